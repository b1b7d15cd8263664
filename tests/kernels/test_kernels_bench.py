"""The benchmark harness (crossent.benchmarking) and `crossent bench`, on tiny sizes."""

from __future__ import annotations

from typer.testing import CliRunner

from crossent import benchmarking as _benchmarks
from crossent.cli import app


def test_run_suite_times_every_contender_and_tabulates_ratios():
    names = ("torch eager", "crossent", "floor: 3 matmuls")
    results = _benchmarks.run_suite(
        "linear_cross_entropy", {"rows": 8, "dim": 4, "classes": 16}, reps=1, memory=False,
        contenders=names,
    )
    assert tuple(result.name for result in results) == names
    assert all(result.seconds > 0 and result.peak_bytes is None for result in results)
    rows = _benchmarks.table_rows(results, "torch eager")
    assert rows[0][2] == "1.00x"
    table = _benchmarks.format_table(_benchmarks.TABLE_HEADER, rows)
    assert "floor: 3 matmuls" in table and "speed-up" in table


def test_cli_bench_rejects_unknown_suite():
    result = CliRunner().invoke(app, ["bench", "--suite", "everything"])
    assert result.exit_code == 2
    assert "--suite 'everything' is not one of cross-entropy, linear, all" in result.output


def test_every_contender_runs_on_a_tiny_problem():
    for suite, sizes in (("cross_entropy", {"rows": 4, "classes": 8}),
                         ("linear_cross_entropy", {"rows": 4, "dim": 3, "classes": 8})):
        names = _benchmarks.CE_CONTENDERS if suite == "cross_entropy" else (
            *_benchmarks.LINEAR_CONTENDERS, "crossent (weight frozen)", "crossent (bfloat16)")
        results = _benchmarks.run_suite(suite, sizes, reps=1, memory=False, contenders=names)
        assert [result.name for result in results] == list(names)


def test_whole_process_peak_is_reported_with_the_rss_before_the_inputs():
    peak, baseline, seconds = _benchmarks.measure_peak_total(
        "linear_cross_entropy", "crossent", {"rows": 4, "dim": 3, "classes": 8}
    )
    assert peak >= baseline > 0 and seconds > 0
