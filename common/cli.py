"""The command line: `compare.py [FLAGS]` runs (parse -> plan -> pre-flight checks -> data -> a
comparison, a study or a parity check) and `compare.py report PATH...` prints the table across
runs. Parent process. Every error is one line (`error: ...`) and a non-zero exit (`cli`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import UserError
from common.figures import plot_cross_run
from common.files import write_text
from common.flags import OUT_FORMATS, build_parser, build_report_parser
from common.plan import resolve
from common.preflight import check_data, check_devices, check_weights, input_shape
from common.ray_executor import check_executor
from common.records import collect_records
from common.report.crossrun import cross_run
from common.report.formats import render_cross_run
from common.runner import check_parity, check_transfer_parity, run_comparison
from common.studies import grid_study, study_folder, sweep_study
from common.tasks import OWN_IMAGES, Task, get_task, is_own_images, load_dataset


def execute(argv: list[str] | None = None) -> Path | None:
    """parse -> resolve (every check) -> load the data once -> parity, study or comparison.
    Returns the folder written (None for --check-parity)."""
    args = build_parser().parse_args(argv)
    plan = resolve(args, argv)
    check_executor(plan.executor, plan.config.threads)
    check_devices(plan)
    task: Task = get_task(args.task)
    cfg = plan.config
    if args.check_parity and not cfg.transfer and task is not OWN_IMAGES:
        check_parity(plan, task.input_shape, task.num_classes)  # shapes only: no data needed
        return None
    ds = load_dataset(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir,
                      download=cfg.download, image_size=cfg.image_size, image_dir=cfg.image_dir)
    if is_own_images(cfg.task):  # the validation size depends on the pool: resolve again
        plan = resolve(args, argv, pool_size=len(ds.x_train))
        cfg = plan.config
    check_data(plan, ds)
    for note in ds.notes:  # facts about the data the reader must know (also in report.md)
        print(f"note: {note}")
    if cfg.transfer:
        check_weights(plan)
    if args.check_parity and cfg.transfer:
        check_transfer_parity(plan, ds)
    elif args.check_parity:
        check_parity(plan, input_shape(ds), len(ds.class_names))
    elif plan.study_kind == "grid":
        folder = study_folder(args.out, "grid", cfg, plan.callbacks, plan.study, args.cv)
        grid_study(folder, plan.study, list(plan.points), plan.frameworks, args.cv, plan.command,
                   plan.executor)
        return folder
    elif plan.study_kind == "sweep":
        folder = study_folder(args.out, "sweep", cfg, plan.callbacks, plan.study)
        sweep_study(folder, plan.study, list(plan.points), plan.frameworks, plan.callbacks,
                    plan.command, plots=not args.no_plots, executor=plan.executor)
        return folder
    else:
        return run_comparison(plan, ds, args.out, plots=not args.no_plots)
    return None


def report_command(argv: list[str], echo: bool = True) -> pd.DataFrame:
    """`compare.py report PATH...`: collect the records, build the table across runs, write
    what was asked for, print the table last (echo). Returns the table's DataFrame."""
    args = build_report_parser().parse_args(argv)
    out = Path(args.out).expanduser() if args.out else None
    if out is not None:
        if out.is_dir():
            raise UserError(f"--out {args.out} is a folder; give a file name such as table.md")
        blocking = next((p for p in out.absolute().parents if p.exists() and not p.is_dir()),
                        None)
        if blocking is not None:
            raise UserError(f"--out {args.out}: {blocking} is a file, not a folder")
    fmt = args.format or (OUT_FORMATS.get(out.suffix.lower(), "markdown") if out else "markdown")
    found, problems = collect_records(args.paths)
    for problem in problems:  # named, never dropped silently
        print(f"warning: {problem}; skipped", file=sys.stderr, flush=True)
    if not found:
        raise UserError("no readable run record (record-*.json) under "
                        + ", ".join(args.paths))
    columns = [c for c in args.columns.split(",") if c.strip()] if args.columns else None
    table = cross_run([(f.run, f.path.name, f.record) for f in found], args.filter, args.sort,
                      args.descending, columns)
    written = []
    figure = None
    if args.plot:
        first = Path(args.paths[0]).expanduser()
        base = (out.with_suffix("") if out else
                (first if first.is_dir() else first.parent) / "crossrun")
        figure = base.with_name(base.name + ".png")
        plot_cross_run(table.labels, table.groups, figure)
        report = out if out is not None and fmt == "markdown" else base.with_name(
            base.name + (".md" if out is None or out.suffix != ".md" else "-figures.md"))
        if report != out:  # the figure is linked from a markdown report beside it
            write_text(report, render_cross_run(table, "markdown", args.transpose, figure.name))
            written.append(f"Report: {report}")
        written.insert(0, f"Figure: {figure}")
    linked = figure is not None and out is not None and fmt == "markdown"
    text = render_cross_run(table, fmt, args.transpose, figure.name if linked else None)
    if out is not None:
        write_text(out, text)
        written.append(f"Table: {out}")
    if echo:
        for line in written:
            print(line)
        print(("\n" if written else "") + text, end="")
    frame = table.frame
    frame.attrs.update(shared=table.shared, labels=table.labels, skipped=problems)
    return frame


def flags_to_argv(parser: argparse.ArgumentParser, options: dict[str, Any]) -> list[str]:
    """Keyword arguments -> the flags they mirror (`batch_size=64` -> `--batch-size 64`), so the
    same parser and checks see them. True: the flag; False: its `--no-` form (or nothing);
    None: left out; a list: the flag repeated (--grid, --sweep, --filter) or comma-joined
    (dense=(256, 64)). An unknown name reaches the parser, which names it."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    argv: list[str] = []

    def given(flag: str, value: Any) -> list[str]:  # as typed; '=' keeps '-1' a value
        text = str(value)
        return [f"{flag}={text}"] if text.startswith("-") else [flag, text]

    for name, value in options.items():
        action = actions.get(name)
        flag = action.option_strings[0] if action else "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, bool) and (action is None or action.nargs == 0):
            argv += [flag] if value else []
        elif isinstance(action, argparse._AppendAction):
            for v in value if isinstance(value, (list, tuple)) else [value]:
                argv += given(flag, v)
        elif isinstance(value, (list, tuple)):
            argv += given(flag, ",".join(str(v) for v in value))
        else:
            argv += given(flag, value)
    return argv


def main(argv: list[str] | None = None) -> int:
    """`report PATH...` builds the table across runs; anything else runs (execute)."""
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["report"]:
        report_command(words[1:])
    else:
        execute(argv)
    return 0


def cli() -> int:
    """The command line: a UserError or Ctrl-C is one line on stderr and a non-zero exit."""
    try:
        return main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; finished records are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `compare.py report ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0

