"""`crossent recommend --all`: users per second and peak RSS, beside materialised logits.

Two catalogues, each a checkpoint with a two-stage model (candidate generator and ranking
model, random weights: speed and memory do not depend on the weights):

1. ml-latest-small (ratings >= 4: ~610 users, ~9k movies);
2. a simulated 1,000,000-item catalogue (``--users`` users with 20 watches each).

Each run is its own subprocess, so its peak RSS (``ru_maxrss`` of that child) is its own:

- ``crossent recommend --all --out recs.parquet`` (users in batches, catalogue in blocks: a
  running top-K and an online log-sum-exp, fixed memory);
- the competitor: what one writes without blocking, ``logits = U @ V.T`` for all users at once,
  then the watched items masked, ``softmax`` and ``topk`` (one stage). On the 1M catalogue it
  would need users x 1M x 4 bytes of logits alone; it runs there only with ``--naive-million``.

Prints users/s and peak RSS for each and their ratios. Target: peak RSS < 2 GiB at 1M items.
The timings on a shared machine are noisy.

    python benchmarks/bench_recommend_all.py
    python benchmarks/bench_recommend_all.py --users 300   # quicker
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from crossent.recsys.data.interactions import Interactions, implicit
from crossent.recsys.data.loaders import load_movielens
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.models.ranker import RankingConfig, RankingModel
from crossent.recsys.models.ranking_inputs import DENSE_FEATURES
from crossent.recsys.serving.checkpoint import save_checkpoint

RSS_TARGET_GIB = 2.0
ROOT = Path(__file__).resolve().parents[1]
MOVIELENS = ROOT / ".." / "shared" / "data" / "ml-latest-small" / "ratings.csv"

NAIVE = """
import sys, time, numpy as np, torch
from crossent.recsys.serving.checkpoint import load_checkpoint
from crossent.recsys.models.networks import windows_from_csr
c = load_checkpoint(sys.argv[1]); k = 10
start = time.perf_counter()
m = c.candidate
window = windows_from_csr(c.watch_indptr, c.watch_items, m.config.history, m.config.n_items)
with torch.no_grad():
    logits = m.scores(window)  # (users, n_items), all at once
rows = np.repeat(np.arange(len(c.user_ids)), np.diff(c.watch_indptr))
logits[torch.from_numpy(rows), torch.from_numpy(c.watch_items)] = -torch.inf
probs = torch.softmax(logits.double(), 1)
top = torch.topk(probs, k, 1)
print(time.perf_counter() - start)
"""


def checkpoint(folder: Path, watches: Interactions, dim: int, *, two_stage: bool) -> None:
    torch.manual_seed(0)
    candidate = CandidateModel(CandidateConfig(n_items=watches.n_items, dim=dim))
    ranking = RankingModel(RankingConfig(dim=dim, n_dense=len(DENSE_FEATURES)))
    save_checkpoint(folder, candidate, watches, ranking=ranking if two_stage else None)


def million_watches(n_users: int, n_items: int = 1_000_000, per_user: int = 20) -> Interactions:
    rng = np.random.default_rng(0)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    return Interactions(
        user=np.repeat(np.arange(n_users), per_user),
        item=items,
        timestamp=np.arange(n_users * per_user),
        rating=None,
        watch_time=None,
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),  # the whole catalogue, watched or not
    )


def measured(command: list[str]) -> tuple[float, float]:
    """Run ``command``; ``(wall seconds, peak RSS in GiB)`` of that child alone."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def row(name: str, users: int, seconds: float, rss: float) -> str:
    return f"{name:<44} {users:>8,} {users / seconds:>10,.0f} {seconds:>8.1f} {rss:>9.2f}"


def run(label: str, folder: Path, users: int, stages: str) -> tuple[float, float, str]:
    """``recommend --all`` on the checkpoint in ``folder``: (seconds, peak GiB, table row)."""
    command = [sys.executable, "-m", "crossent", "recommend", "--model", str(folder), "--all"]
    seconds, rss = measured([*command, "--out", str(folder / "recs.parquet")])
    return seconds, rss, row(f"{label}: recommend --all ({stages})", users, seconds, rss)


def versus(label: str, ours: tuple[float, float, str], folder: Path, users: int) -> list[str]:
    """The materialised-logits competitor on the same checkpoint, and the ratios."""
    seconds, rss = measured([sys.executable, "-c", NAIVE, str(folder)])
    return [
        ours[2],
        row(f"{label}: materialised logits (one stage)", users, seconds, rss),
        f"{'':<44} ours / materialised: time {ours[0] / seconds:.2f}x, "
        f"peak RSS {ours[1] / rss:.2f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MOVIELENS)
    parser.add_argument("--users", type=int, default=1000, help="users of the 1M catalogue")
    parser.add_argument("--naive-million", action="store_true")
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        watches = implicit(load_movielens(args.data), 4.0)
        for stages in ("one stage", "two-stage"):
            folder = Path(tmp) / f"ml-small-{stages}"
            checkpoint(folder, watches, dim=64, two_stage=stages == "two-stage")
            ours = run("ml-latest-small", folder, watches.n_users, stages)
            if stages == "one stage":
                lines += versus("ml-latest-small", ours, folder, watches.n_users)
            else:
                lines.append(ours[2])
        folder = Path(tmp) / "million"
        checkpoint(folder, million_watches(args.users), dim=32, two_stage=True)
        million = run("1M items", folder, args.users, "two-stage")
        lines += (
            versus("1M items", million, folder, args.users) if args.naive_million else [million[2]]
        )
    print("recommend --all, k = 10; wall time includes start-up and loading the checkpoint")
    print(f"{'run':<44} {'users':>8} {'users/s':>10} {'seconds':>8} {'peak GiB':>9}")
    print("\n".join(lines))
    verdict = "meets" if million[1] < RSS_TARGET_GIB else "MISSES"
    print(f"1M items: peak RSS {million[1]:.2f} GiB {verdict} the target < {RSS_TARGET_GIB} GiB")


if __name__ == "__main__":
    main()
