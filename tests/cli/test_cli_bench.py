"""`crossent bench` through typer's CliRunner, with the timing itself replaced by fixed results.

The harness (crossent.benchmarking) is tested on tiny sizes in tests/kernels/; here the
command's parsing and its table are: which suites run at which sizes, and the ratios shown.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from crossent import benchmarking
from crossent.cli import app


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, int], int, bool]]:
    """Record run_suite's arguments; torch eager takes 2 s and 400 MiB, crossent 1 s, 100 MiB."""
    seen: list[tuple[str, dict[str, int], int, bool]] = []

    def fake_run_suite(name, sizes, *, reps, memory, progress=None, contenders=None):  # type: ignore[no-untyped-def]
        seen.append((name, sizes, reps, memory))
        return [
            benchmarking.Result("torch eager", 2.0, 400 * 2**20),
            benchmarking.Result("crossent", 1.0, 100 * 2**20),
        ]

    monkeypatch.setattr(benchmarking, "run_suite", fake_run_suite)
    return seen


def test_bench_quick_linear_prints_speed_up_and_memory_ratio(calls: list) -> None:  # type: ignore[type-arg]
    result = CliRunner().invoke(
        app, ["bench", "--suite", "linear", "--quick", "--reps", "2"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    quick_linear = {"rows": 2048, "dim": 128, "classes": 20_000}
    assert calls == [("linear_cross_entropy", quick_linear, 2, True)]
    assert "linear + cross-entropy N=2048 D=128 V=20000" in result.output
    rows = [line for line in result.output.splitlines() if "crossent" in line]
    crossent_row = rows[-1]
    assert "2.00x" in crossent_row  # 2 s / 1 s
    assert "0.25x" in crossent_row  # 100 MiB / 400 MiB
    assert result.output.count("load average") == 2  # before and after, for the record


def test_bench_all_runs_both_suites_at_full_size(calls: list) -> None:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, ["bench", "--no-memory"])
    assert result.exit_code == 0, result.output
    assert [(name, sizes, memory) for name, sizes, _, memory in calls] == [
        ("cross_entropy", {"rows": 4096, "classes": 32768}, False),
        ("linear_cross_entropy", {"rows": 8192, "dim": 256, "classes": 100_000}, False),
    ]


def test_bench_suite_accepts_the_underscore_spelling(calls: list) -> None:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, ["bench", "--suite", "cross_entropy", "--quick"])
    assert result.exit_code == 0, result.output
    assert [name for name, *_ in calls] == ["cross_entropy"]


def test_bench_rejects_zero_reps_with_exit_2(calls: list) -> None:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, ["bench", "--reps", "0"])
    assert result.exit_code == 2
    assert "--reps = 0 must be an integer >= 1" in result.output
    assert calls == []
