"""Benchmarks (benchmarks/, beside crossent._bench_support): the peers benchmark refuses
contradictory or negative options before any work, in one line."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_recsys_peers.py"


@pytest.mark.parametrize(("options", "message"), [
    (["--speed-only", "--concurrent"], "--concurrent is for quality runs"),
    (["--speed-only", "--only", "crossent"], "--only is for quality runs"),
    (["--peer-budget-min", "-5"], "--peer-budget-min = -5.0 must be a finite number >= 0"),
    (["--peer-budget-min", "nan"], "--peer-budget-min = nan must be a finite number >= 0"),
    (["--peer-threads", "-1"], "--peer-threads = -1 must be an integer >= 0"),
    (["--speed-only", "--peer-state", "st"], "--peer-state st resumes RecTools' quality run: "
     "it does not go with --speed-only"),
    (["--only", "crossent", "--peer-state", "st"], "it does not go with --only crossent"),
    (["--data", "ml", "--min-rating", "-1"], "--min-rating = -1.0 must be a finite number >= 0"),
    (["--min-rating", "0"], "--min-rating 0 is for --data ml: video has no ratings"),
    (["--peer-monitor", "loss"], "argument --peer-monitor: invalid choice: 'loss'"),
    (["--data", "video2"], "argument --data: invalid choice: 'video2'"),
    (["--speed-only", "--peer-monitor", "ndcg"], "--peer-monitor ndcg sets RecTools' early "
     "stopping: it does not go with --speed-only"),
    (["--only", "crossent", "--peer-monitor", "ndcg"], "it does not go with --only crossent"),
])
def test_bad_options_exit_2_naming_the_value(options: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH), *options], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no usage dump, no traceback
