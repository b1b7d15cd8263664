"""Helpers of bench_recsys_peers.py: the data, the split, child processes, scoring, the table."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATA = {
    "video": SHARED / "amazon-video" / "Video.txt",
    "ml": SHARED / "ml-latest-small" / "ratings.csv",
}
#: RecTools' session_max_len (and crossent's --history in the speed mode) per data set
HISTORY = {"video": 50, "ml": 200}
MIN_EVENTS = 3  # users with fewer interactions stay in training and are not scored


#: ml-latest-small's ratings kept as watches unless --min-rating says otherwise
ML_MIN_RATING = 4.0


def read_events(data: str, min_rating: float = ML_MIN_RATING) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) of every interaction, in time order (ties keep file order).

    On ml-latest-small a rating at or above ``min_rating`` is a watch (0 keeps every rating,
    as ``crossent train --min-rating 0`` does); Video has no ratings."""
    path = DATA[data]
    if not path.exists():
        raise SystemExit(f"{path} is missing: the {data!r} data set is not on this machine")
    if data == "video":
        pairs = pd.read_csv(path, sep=" ", header=None, names=["user", "item"], dtype="int64")
        return pairs["user"].to_numpy(), pairs["item"].to_numpy()
    ratings = pd.read_csv(path)
    watches = ratings[ratings["rating"] >= min_rating].sort_values("timestamp", kind="stable")
    return watches["userId"].to_numpy(np.int64), watches["movieId"].to_numpy(np.int64)


@dataclass
class Split:
    train_user: np.ndarray  # grouped by user (ascending id), time order within a user
    train_item: np.ndarray
    test_user: np.ndarray  # the scored users (MIN_EVENTS or more interactions)
    test_item: np.ndarray
    n_users: int
    n_items: int
    n_events: int

    def protocol(self, data: str, max_users: int | None,
                 min_rating: float = ML_MIN_RATING) -> str:
        sample = f", the first {max_users:,} users by id" if max_users else ""
        ratings = f", ratings >= {min_rating:g}" if data == "ml" else ""
        return (
            f"{data}{ratings}{sample}: {self.n_users:,} users, {self.n_items:,} items, "
            f"{self.n_events:,} interactions; per user the last interaction (time order) is "
            f"the test item and everything before it the training file; "
            f"{len(self.test_user):,} users scored (those with fewer than {MIN_EVENTS} "
            f"interactions stay in training, unscored); full ranking, seen items excluded; "
            f"MRR@10 = 1/rank within the top 10, else 0"
        )


def make_split(user: np.ndarray, item: np.ndarray, max_users: int | None) -> Split:
    """Per user, the last event is the test item; the others, in time order, are training."""
    if max_users:
        keep = np.isin(user, np.unique(user)[:max_users])
        user, item = user[keep], item[keep]
    order = np.argsort(user, kind="stable")  # grouped by user, time order kept
    user, item = user[order], item[order]
    last = np.r_[user[1:] != user[:-1], True]
    counts = np.bincount(np.unique(user, return_inverse=True)[1])
    scored = last & (np.repeat(counts, counts) >= MIN_EVENTS)
    return Split(
        train_user=user[~scored], train_item=item[~scored], test_user=user[scored],
        test_item=item[scored], n_users=len(counts), n_items=len(np.unique(item)),
        n_events=len(user),
    )


def write_split(split: Split, work: Path) -> tuple[Path, Path]:
    """TRAIN.txt (``user item`` lines, time order within a user) and the scored users' ids."""
    work.mkdir(parents=True, exist_ok=True)
    train, users = work / "train.txt", work / "test_users.txt"
    np.savetxt(train, np.c_[split.train_user, split.train_item], fmt="%d")
    np.savetxt(users, split.test_user, fmt="%d")
    np.savetxt(work / "test.txt", np.c_[split.test_user, split.test_item], fmt="%d")
    return train, users


@dataclass
class Child:
    returncode: int
    seconds: float
    peak_rss_mib: float


def run_child(command: list[str], env: dict[str, str] | None = None) -> Child:
    """Run ``command`` (its output on our stderr); its wall time and its own peak RSS.

    ``env`` is the child's whole environment (default: ours)."""
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=sys.stderr, stderr=sys.stderr,
                               env=dict(os.environ) if env is None else env)
    _, status, usage = os.wait4(process.pid, 0)  # this child's rusage, not every child's
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}")
    return Child(process.returncode, seconds, usage.ru_maxrss / 1024)  # KiB on Linux


def ranks(recs: pd.DataFrame, split: Split, k: int = 10) -> np.ndarray:
    """0-based rank of each scored user's test item in ``recs`` (user, item, rank from 1);
    -1 when it is not in the top ``k``."""
    test = pd.DataFrame({"user": split.test_user, "item": split.test_item})
    found = test.merge(recs[recs["rank"] <= k], on=["user", "item"], how="left")
    return (found["rank"].fillna(0).to_numpy(np.int64) - 1)


def metrics(rank: np.ndarray) -> dict[str, float]:
    """HR@10, NDCG@10 (1/log2(rank+2)) and MRR@10 (1/(rank+1)), with standard errors."""
    hit = rank >= 0
    ndcg = np.where(hit, 1.0 / np.log2(np.maximum(rank, 0) + 2.0), 0.0)
    mrr = np.where(hit, 1.0 / (np.maximum(rank, 0) + 1.0), 0.0)
    n = max(len(rank), 1)
    out = {"users": float(len(rank))}
    for name, values in (("HR@10", hit.astype(float)), ("NDCG@10", ndcg), ("MRR@10", mrr)):
        out[name] = float(values.mean()) if len(values) else math.nan
        out[f"{name} SE"] = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return out


def check_recs(recs: pd.DataFrame, train: pd.DataFrame, split: Split) -> dict[str, int]:
    """Seen items recommended, ids unknown to the training file, scored users left without."""
    seen = train.merge(recs[["user", "item"]], on=["user", "item"])
    return {
        "seen_items_recommended": len(seen),
        "unknown_users": int((~recs["user"].isin(train["user"])).sum()),
        "unknown_items": int((~recs["item"].isin(train["item"])).sum()),
        "scored_users_without_recs": len(set(split.test_user) - set(recs["user"])),
    }


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:,.{digits}f}"
