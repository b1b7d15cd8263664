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


def test_peak_tensor_bytes_replays_allocations_and_frees_in_order():
    import torch

    from crossent._bench_support import peak_tensor_bytes

    def step() -> None:
        first = torch.ones(1000, 1000)  # 4 MB
        second = torch.ones(500, 1000)  # 2 MB: 6 MB held
        del first  # 2 MB held
        third = torch.ones(2000, 1000)  # 8 MB: 10 MB held, the peak
        del second, third

    assert peak_tensor_bytes(step) == 10_000_000


def test_memory_witnesses_count_the_gradients_a_step_leaves():
    rows, dim, classes = 64, 8, 1000
    rss, tensors = _benchmarks.measure_peak(
        "linear_cross_entropy", "crossent", {"rows": rows, "dim": dim, "classes": classes})
    gradients = 4 * (rows * dim + classes * dim)
    assert tensors >= gradients and rss >= 0


def test_machine_header_names_the_cpu_and_the_kernels():
    from crossent._bench_support import machine_header

    header = machine_header()
    assert header.startswith("# CPU: ") and "torch" in header and "numba" in header
    assert "ATEN_CPU_CAPABILITY=" in header and "NUMBA_CPU_NAME=" in header
