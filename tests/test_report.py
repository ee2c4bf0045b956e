"""The report text from records: the --repeats table (mean ± std), the Welch difference lines
and their zero-variance case, the epochs column, and the sweep's at-chance tolerance."""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest
from scipy import stats
from tests_support import make_record

from common.report.run import comparison_table, difference_line, difference_lines
from common.studies import status


def repeats(framework: str, accuracies: list[float]) -> list:
    return [make_record(framework, repeat=i, seed=i, test_accuracy=a, train_seconds=3.0 + i)
            for i, a in enumerate(accuracies)]


def test_repeats_are_pooled_as_mean_and_std():
    records = repeats("keras", [0.90, 0.92, 0.94]) + repeats("torch", [0.80, 0.81, 0.85])
    table = comparison_table(records).set_index("framework")
    assert list(table.index) == ["keras (n=3)", "torch (n=3)"]
    assert table.loc["keras (n=3)", "test accuracy"] == "0.9200 ± 0.0200"
    sd = statistics.stdev([0.80, 0.81, 0.85])
    assert table.loc["torch (n=3)", "test accuracy"] == f"0.8200 ± {sd:.4f}"
    assert table.loc["torch (n=3)", "training s"] == "4.0 ± 1.0"


def test_difference_line_is_a_welch_interval():
    keras, torch = [0.90, 0.92, 0.94], [0.80, 0.81, 0.85]
    line = difference_line(repeats("keras", keras) + repeats("torch", torch), "test_accuracy",
                           "test accuracy", 100.0, " pp")
    welch = stats.ttest_ind([100 * a for a in keras], [100 * a for a in torch], equal_var=False)
    low, high = welch.confidence_interval(0.95)
    assert line == (f"test accuracy, keras - torch: +10.000 pp, 95% CI [{low:+.3f}, {high:+.3f}] "
                    f"pp (Welch t-test p={welch.pvalue:.3f}: significant at 5%)")


def test_zero_variance_in_both_groups_has_no_interval():
    same = repeats("keras", [0.9, 0.9]) + repeats("torch", [0.9, 0.9])
    assert difference_line(same, "test_accuracy", "acc").endswith(
        "+0.000, zero variance in both groups: not significant")
    apart = repeats("keras", [0.9, 0.9]) + repeats("torch", [0.8, 0.8])
    assert difference_line(apart, "test_accuracy", "acc").endswith(
        "zero variance in both groups: significant")


def test_one_run_each_asks_for_repeats_and_one_framework_has_no_difference():
    line = difference_line(repeats("keras", [0.9]) + repeats("torch", [0.8]), "test_accuracy",
                           "acc")
    assert "+0.100" in line and "--repeats 2" in line
    assert difference_lines(repeats("torch", [0.8, 0.9])) == []


def test_epochs_column_flags_early_stops():
    stopped = make_record("keras", history=make_record("keras").history[:1], stopped_early=True)
    table = comparison_table([stopped, make_record("torch")]).set_index("framework")
    assert table.loc["keras", "epochs"] == "1 of 2 (stopped)"
    assert table.loc["torch", "epochs"] == "2"


@pytest.mark.parametrize("accuracy,expected", [
    (0.1001, "at chance"),  # 10 balanced classes on 360 images: within two standard errors
    (0.125, "at chance"),
    (0.16, "ok"),
    (0.9, "ok"),
])
def test_at_chance_uses_a_tolerance(accuracy, expected):
    assert status(make_record("torch", test_accuracy=accuracy)) == expected


def test_every_framework_is_compared_with_the_torch_column():
    """--framework keras,keras-jax,keras-torch,torch: a difference line per Keras backend,
    each against torch (the reference), whatever the column order."""
    records = (repeats("keras-jax", [0.7]) + repeats("torch", [0.8]) + repeats("keras", [0.9])
               + repeats("keras-torch", [0.8]))
    lines = [line for line in difference_lines(records) if line.startswith("test accuracy")]
    assert [line.split(":")[0] for line in lines] == [
        "test accuracy, keras-jax - torch", "test accuracy, keras - torch",
        "test accuracy, keras-torch - torch"]
    assert "-10.000 pp" in lines[0] and "+10.000 pp" in lines[1] and "+0.000 pp" in lines[2]
    assert len(difference_lines(records)) == 3 * 3  # accuracy, loss, seconds per backend


def test_without_torch_the_first_column_is_the_reference():
    records = repeats("keras", [0.9]) + repeats("keras-jax", [0.85])
    assert difference_lines(records)[0].startswith("test accuracy, keras-jax - keras: -5.000 pp")


def test_rows_name_their_setup_and_a_mixed_comparison_is_flagged():
    cpu = make_record("keras")
    fast = make_record("torch", config=replace(cpu.config, mode="fast", deterministic=False),
                       environment={**cpu.environment, "framework": "torch", "device": "cuda"})
    table = comparison_table([cpu, fast]).set_index("framework")
    assert table.loc["keras", "device, mode, precision"] == "cpu, reference, float32"
    assert table.loc["torch", "device, mode, precision"] == "cuda, fast, float32"
    warning = difference_lines([cpu, fast])[0]
    assert warning.startswith("WARNING: the frameworks ran on different devices and modes")
    assert "keras cpu, reference, float32; torch cuda, fast, float32" in warning
    assert not difference_lines([cpu, make_record("torch")])[0].startswith("WARNING")


def test_records_of_other_splits_or_initial_weights_are_refused_side_by_side():
    """A node that read data of another size, or ran another version of the suite: the report
    names each record's hash and node instead of comparing them."""
    from common.errors import UserError
    from common.report.run import check_comparable

    keras = make_record("keras", initial_weights_hash="aa", environment={"node": "n1"})
    torch = make_record("torch", initial_weights_hash="aa", environment={"node": "n2"})
    check_comparable([keras, torch])  # the same split and start: fine
    with pytest.raises(UserError, match="different data splits .*keras: 0123.* on n1"):
        check_comparable([keras, replace(torch, split_hash="ffff")])
    with pytest.raises(UserError, match="repeat 0 started from different initial weights "
                                        r"\(keras: aa on n1; torch: bb on n2\).*move the records"):
        check_comparable([keras, replace(torch, initial_weights_hash="bb")], resume=True)
    # other repeats start from other weights (seed + repeat): not a mismatch
    check_comparable([keras, torch, replace(keras, repeat=1, initial_weights_hash="cc"),
                      replace(torch, repeat=1, initial_weights_hash="cc")])


def test_other_cpus_or_other_jobs_beside_withhold_the_time_verdict():
    def record(framework, cpu, other_jobs):
        return make_record(framework, environment={"cpu_model": cpu, "node": f"{framework}-n"},
                           contention={"busy": False, "other_jobs": other_jobs})

    alike = [record("keras", "EPYC", 1), record("torch", "EPYC", 1)]
    assert not any(line.startswith("training seconds: not compared")
                   for line in difference_lines(alike))
    for records, reason in (([record("keras", "EPYC", 0), record("torch", "Xeon", 0)],
                             "different kinds of CPU (keras on keras-n: EPYC; torch on torch-n"),
                            ([record("keras", "EPYC", 0), record("torch", "EPYC", 2)],
                             "different numbers of other jobs (keras 0; torch 2")):
        lines = difference_lines(records)
        verdict = [line for line in lines if line.startswith("training seconds")]
        assert len(verdict) == 1 and verdict[0].startswith("training seconds: not compared")
        assert reason in verdict[0], verdict[0]
