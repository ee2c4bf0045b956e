"""Tables across runs (`compare.py report PATH...`, compare.load): what differs becomes a column,
what is shared is listed once, every format, sort/filter/columns, unreadable records named and
skipped, the cross-run figure; and from Python, compare.run: the same checks and messages as the
command line, the same numbers, progress lines a notebook can show, and records holding the
train, validation and test scores of the tested weights. Records are built, not trained, except
for one command-line run and one compare.run of 1 epoch on 200 digits."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import main_error, run_dirs
from tests_support import make_record

import compare
from common.errors import UserError
from common.optim import resolve_optimizer
from common.files import read_json, write_json
from common.records import RunRecord


def with_lr(record: RunRecord, lr: float) -> RunRecord:
    return replace(record, config=replace(record.config, optimizer=resolve_optimizer("sgd", lr)))


def two_runs(out: Path, repeats: int = 1) -> Path:
    """Two run folders under `out`, lr 0.01 and 0.05, both frameworks (accuracies distinct)."""
    for n, lr in enumerate((0.01, 0.05)):
        run = out / f"2025010{n + 1}-120000-digits"
        for k in range(repeats):
            for m, fw in enumerate(("keras", "torch")):
                record = with_lr(make_record(fw, repeat=k, seed=k,
                                             test_accuracy=0.80 + n / 10 + m / 100 + k / 1000),
                                 lr)
                suffix = f"-r{k}" if repeats > 1 else ""
                write_json(run / f"record-{fw}{suffix}.json", record)
    return out


def report(capsys, *argv: str) -> tuple[str, str]:
    capsys.readouterr()
    assert compare.main(["report", *argv]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_one_table_across_runs_shows_what_differs_and_lists_the_rest_once(tmp_path, capsys):
    out, err = report(capsys, str(two_runs(tmp_path)))
    assert err == ""
    header, _, *rows = table_rows(out)
    assert header[:3] == ["run", "framework", "lr"], header
    assert {"train_accuracy", "val_accuracy", "test_accuracy", "test_loss", "train_seconds",
            "seconds_per_epoch"} <= set(header)
    assert [(r[1], r[2]) for r in rows] == [("keras", "0.01"), ("torch", "0.01"),
                                            ("keras", "0.05"), ("torch", "0.05")]
    shared = next(line for line in out.splitlines() if line.startswith("Same in every run:"))
    assert "batch_size=32" in shared and "optimizer=sgd" in shared and "task=digits" in shared
    assert "lr=" not in shared and "batch_size" not in header
    assert out.index("Same in every run:") < out.index("| run")


def test_repeats_of_a_run_are_pooled(tmp_path, capsys):
    out, _ = report(capsys, str(two_runs(tmp_path, repeats=2)))
    header, _, *rows = table_rows(out)
    assert len(rows) == 4 and "seed" not in header  # repeats differ only in their seed
    row = dict(zip(header, rows[0]))
    assert row["framework"] == "keras (n=2)"
    assert row["test_accuracy"] == "0.8005 ± 0.0007"
    frame = compare.load(tmp_path)
    assert list(frame["n"]) == [2, 2, 2, 2]
    assert frame["test_accuracy"][0] == pytest.approx(0.8005)


def test_formats_latex_csv_html_and_transpose(tmp_path, capsys):
    two_runs(tmp_path)
    latex, _ = report(capsys, str(tmp_path), "--format", "latex")
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"test\_accuracy" in latex and "test_accuracy" not in latex.replace(r"\_", "")
    assert r"batch\_size=32" in latex  # the shared line, escaped too
    csv, _ = report(capsys, str(tmp_path), "--format", "csv")
    frame = pd.read_csv(io.StringIO(csv))
    assert len(frame) == 4 and list(frame["lr"]) == [0.01, 0.01, 0.05, 0.05]
    assert frame["test_accuracy"].dtype == float and (frame["batch_size"] == 32).all()
    html, _ = report(capsys, str(tmp_path), "--format", "html")
    assert "<table" in html and "<p>Same in every run:" in html
    wide, _ = report(capsys, str(tmp_path), "--transpose")
    header, _, *rows = table_rows(wide)
    assert header == ["quantity", "lr=0.01 keras", "lr=0.01 torch", "lr=0.05 keras",
                      "lr=0.05 torch"]
    assert rows[0][0] == "run" and any(r[0] == "test_accuracy" for r in rows)


def test_latex_escapes_special_characters():
    from common.report.formats import latex_escape

    assert latex_escape("a_b 50% R&D ±") == r"a\_b 50\% R\&D $\pm$"


def test_sort_filter_and_columns(tmp_path, capsys):
    two_runs(tmp_path)
    out, _ = report(capsys, str(tmp_path), "--sort", "test accuracy", "--descending")
    header, _, *rows = table_rows(out)
    accuracies = [float(r[header.index("test_accuracy")]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    out, _ = report(capsys, str(tmp_path), "--filter", "lr=5e-2", "--filter", "framework=torch")
    header, _, *rows = table_rows(out)
    assert len(rows) == 1 and "lr" not in header  # one run left: its lr is shared now
    assert "lr=0.05" in out
    out, _ = report(capsys, str(tmp_path), "--columns", "lr,framework,test_accuracy")
    assert table_rows(out)[0] == ["lr", "framework", "test_accuracy"]


@pytest.mark.parametrize("flag,value", [("--sort", "accuracy"), ("--filter", "speed=1"),
                                        ("--columns", "lr,colour")])
def test_an_unknown_key_is_one_line_listing_the_valid_ones(tmp_path, capsys, flag, value):
    two_runs(tmp_path)
    line = main_error(capsys, "report", str(tmp_path), flag, value)
    assert line.startswith(f"{flag}: unknown key") and "valid keys: run, framework, task" in line
    assert "test_accuracy" in line and "batch_size" in line


def test_unreadable_records_are_named_and_skipped(tmp_path, capsys):
    two_runs(tmp_path)
    corrupt = tmp_path / "20250103-120000-digits" / "record-keras.json"
    corrupt.parent.mkdir()
    corrupt.write_text('{"task": "digits", "framew')
    older = corrupt.with_name("record-torch.json")  # written before the train/val scores
    data = read_json(tmp_path / "20250101-120000-digits" / "record-torch.json")
    del data["train_accuracy"], data["val_loss"]
    older.write_text(json.dumps(data))
    out, err = report(capsys, str(tmp_path))
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings)
    assert str(corrupt) in warnings[0] and "invalid JSON" in warnings[0]
    assert str(older) in warnings[1] and "train_accuracy" in warnings[1]
    assert len(table_rows(out)) == 2 + 4  # every good record is still there
    assert compare.load(tmp_path).attrs["skipped"] == [w[len("warning: "):-len("; skipped")]
                                                       for w in warnings]


def test_no_records_and_missing_paths_are_one_line(tmp_path, capsys):
    assert "no readable run record" in main_error(capsys, "report", str(tmp_path))
    assert "no such file" in main_error(capsys, "report", str(tmp_path / "nope"))
    assert "--out" in main_error(capsys, "report", str(tmp_path), "--out", str(tmp_path))


def test_out_writes_the_format_of_its_suffix_and_plot_links_the_figure(tmp_path, capsys):
    two_runs(tmp_path / "runs")
    out, _ = report(capsys, str(tmp_path / "runs"), "--out", str(tmp_path / "t" / "table.tex"))
    assert r"\toprule" in (tmp_path / "t" / "table.tex").read_text()
    assert out.startswith(f"Table: {tmp_path / 't' / 'table.tex'}")
    report(capsys, str(tmp_path / "runs"), "--plot", "--out", str(tmp_path / "cross.md"))
    assert (tmp_path / "cross.png").stat().st_size > 10_000
    assert "![" in (tmp_path / "cross.md").read_text() and "(cross.png)" in (
        tmp_path / "cross.md").read_text()
    out, _ = report(capsys, str(tmp_path / "runs"), "--plot", "--format", "csv")
    assert (tmp_path / "runs" / "crossrun.png").is_file()  # beside the first PATH, linked
    assert "(crossrun.png)" in (tmp_path / "runs" / "crossrun.md").read_text()
    assert [p.name for p in tmp_path.rglob(".*.tmp")] == []  # atomic writers left nothing


def test_flags_from_keyword_arguments():
    argv = compare.flags_to_argv(compare.build_parser(), {
        "task": "digits", "batch_size": 64, "dense": (256, 64), "batch_norm": False,
        "no_plots": True, "no_download": False, "sweep": ["lr=0.1,0.01", "epochs=1,2"],
        "model": None})
    assert argv == ["--task", "digits", "--batch-size", "64", "--dense", "256,64",
                    "--no-batch-norm", "--no-plots", "--sweep", "lr=0.1,0.01", "--sweep",
                    "epochs=1,2"]
    assert compare.flags_to_argv(compare.build_parser(), {"seed": -1}) == ["--seed=-1"]


@pytest.mark.parametrize("options,argv", [
    ({"epochs": 0}, ["--epochs", "0"]),
    ({"framework": "jax"}, ["--framework", "jax"]),
    ({"colour": "red"}, ["--colour", "red"]),
])
def test_run_raises_the_command_lines_one_line(tmp_path, capsys, options, argv):
    with pytest.raises(UserError) as err:
        compare.run(task="digits", out=str(tmp_path), **options)
    line = main_error(capsys, "--task", "digits", "--out", str(tmp_path), *argv)
    assert str(err.value) == line  # the same parser, the same words
    assert run_dirs(tmp_path) == []


# ----------------------------------------------------------------------------- real runs

@pytest.fixture(scope="session")
def cli_and_api(small_runs):
    return small_runs


def test_run_returns_the_command_lines_numbers(cli_and_api):
    out, frame, _ = cli_and_api
    cli_dir, api_dir = run_dirs(out)
    assert frame.attrs["run_dir"] == api_dir
    cli = {f: r.test_accuracy for f, r in
           ((r.framework, r) for r in compare.run_records(cli_dir))}
    assert dict(zip(frame["framework"], frame["test_accuracy"])) == cli
    assert (api_dir / "config.json").is_file() and (api_dir / "report.md").is_file()


def test_run_forwards_progress_lines(cli_and_api):
    _, _, shown = cli_and_api
    assert "keras epoch 1/1: loss" in shown and "torch epoch 1/1: loss" in shown
    assert "Results:" in shown


def test_records_hold_train_val_and_test_scores_of_the_tested_weights(cli_and_api):
    out, _, _ = cli_and_api
    for run_dir in run_dirs(out):
        for r in compare.run_records(run_dir):
            assert 0 <= r.train_accuracy <= 1 and 0 <= r.val_accuracy <= 1
            assert r.train_loss > 0 and r.val_loss > 0
            # restore-best tests the best epoch's weights: the same validation scores
            best = r.history[r.best_epoch - 1]
            assert r.val_accuracy == pytest.approx(best["val_accuracy"])
            assert r.val_loss == pytest.approx(best["val_loss"], rel=1e-4)
            assert "evaluation_seconds" in r.excluded_from_timing
        results = pd.read_csv(run_dir / "results.csv")
        assert len(results) == 2 and {"train_accuracy", "val_accuracy", "test_accuracy",
                                      "lr", "batch_size", "record"} <= set(results.columns)


def test_report_over_both_invocations(cli_and_api, capsys):
    out, _, _ = cli_and_api
    text, err = report(capsys, str(out), "--plot")
    header, _, *rows = table_rows(text)
    assert len(rows) == 4 and header[:2] == ["run", "framework"] and err == ""
    assert (out / "crossrun.png").is_file()


def test_results_csv_of_a_folder_and_of_a_grid(tmp_path):
    from common.records import GridPoint, GridRecord
    from common.report.studies import grid_frame
    from common.report.values import results_csv

    two_runs(tmp_path)
    folder = tmp_path / "20250101-120000-digits"
    frame = pd.read_csv(io.StringIO(results_csv(folder)))
    assert list(frame["record"]) == ["record-keras.json", "record-torch.json"]
    assert {"run", "framework", "repeat", "lr", "dense", "train_accuracy", "val_accuracy",
            "test_accuracy", "diverged"} <= set(frame.columns)
    assert "data_dir" not in frame.columns
    base = make_record("keras").config
    configs = [base, with_lr(make_record("keras"), 0.1).config]
    point = GridPoint(0.9, 0.01, [0.89, 0.91], 1.0, 0.1, 1)
    grid = GridRecord(task="digits", framework="keras", model="digits_cnn", keys=["lr"],
                      labels=[{"lr": "0.01"}, {"lr": "0.1"}], configs=configs, cv=2,
                      scoring="accuracy", folds_hash="f", split_hash="s", train_size=1137,
                      test_size=360, results=[point, replace(point, rank=2)], best_index=0,
                      best_cv_accuracy=0.9, params=38282, test_accuracy=0.95, test_loss=0.2,
                      refit_seconds=1.0, search_seconds=5.0, excluded_from_timing={},
                      cv_results_csv="cv_results-keras.csv", environment={})
    rows = grid_frame([grid])
    assert list(rows["lr"]) == [0.01, 0.1] and list(rows["best"]) == [True, False]
    assert rows["test_accuracy"][0] == 0.95 and pd.isna(rows["test_accuracy"][1])


def test_cnn_and_transfer_runs_in_one_table(tmp_path, capsys):
    from common.transfer import TransferSpec

    cnn = make_record("keras")
    transfer = replace(cnn, model="mobilenetv2 96px, torchvision", config=replace(
        cnn.config, pipeline="transfer", model="mobilenetv2",
        transfer=TransferSpec(backbone="mobilenetv2", weights="none")))
    write_json(tmp_path / "a" / "record-keras.json", cnn)
    write_json(tmp_path / "b" / "record-keras.json", transfer)
    out, _ = report(capsys, str(tmp_path), "--sort", "backbone")
    header, _, *rows = table_rows(out)
    row = {r[0]: dict(zip(header, r)) for r in rows}
    assert row["a"]["backbone"] == "-" and row["a"]["filters"] == "16,32"
    assert row["b"]["backbone"] == "mobilenetv2" and row["b"]["filters"] == "-"
    assert [r[0] for r in rows] == ["b", "a"]  # empty values sort last
