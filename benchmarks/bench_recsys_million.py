"""Peak memory of one full-softmax epoch (on a sample) over a 1,000,000-video catalogue.

    .venv/bin/python benchmarks/bench_recsys_million.py [--videos 1000000] [--examples 2048]

Draws a Zipf-popularity watch log over the catalogue (every video exists in the id space even
if never watched), trains the candidate generator for one epoch on ``--examples`` training
examples with the exact softmax over all videos (``linear_cross_entropy``: no N x V logits),
validates on 32 users, and prints the peak resident set size (the target: under 4 GiB).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from crossent.recsys.data.interactions import Interactions, leave_last_out
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.training.loop import TrainConfig, fit_candidate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--watches", type=int, default=20, help="watches per user")
    parser.add_argument("--examples", type=int, default=2_048, help="training sample size")
    parser.add_argument("--dim", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # Zipf popularity over the whole catalogue: P(rank r) ~ r^-0.8
    weights = np.arange(1, args.videos + 1, dtype=np.float64) ** -0.8
    cdf = np.cumsum(weights / weights.sum())
    items = np.searchsorted(cdf, rng.random(args.users * args.watches)).clip(0, args.videos - 1)
    users = np.repeat(np.arange(args.users), args.watches)
    watches = Interactions(
        user=users,
        item=items,
        timestamp=np.arange(len(users)),
        rating=None,
        watch_time=None,
        user_ids=np.arange(args.users),
        item_ids=np.arange(args.videos),
    )
    split = leave_last_out(watches)
    model = CandidateModel(CandidateConfig(n_items=args.videos, dim=args.dim))
    start = time.perf_counter()
    history = fit_candidate(
        model,
        split,
        TrainConfig(epochs=1, batch_size=512, max_examples=args.examples),
        valid_users=split.users("valid")[:32],
        progress=True,
    )
    elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"videos {args.videos:,}  training examples {args.examples:,}  dim {args.dim}")
    print(
        f"train {history.train_bits[0]:.3f} bits, validation {history.valid_bits[0]:.3f} bits "
        f"(uniform: {np.log2(args.videos):.3f} bits)"
    )
    print(
        f"epoch time {elapsed:.1f} s, peak RSS {peak_mib:,.0f} MiB "
        f"({'within' if peak_mib < 4096 else 'OVER'} 4 GiB)"
    )


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
