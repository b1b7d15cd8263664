"""crossent's sequence model for exactly N epochs: the speed mode of bench_recsys_peers.py.

Runs with crossent's .venv in its own process, so its peak RSS is the training's alone.
``crossent train`` also fits its baselines (EASE, the bag model) in the same process, which
would set the peak memory; this worker calls ``train_retrieval`` with ``baselines=False``
instead. Training runs as ``crossent train`` does it (its own leave-last-out split of TRAIN,
validation NDCG@10 after every epoch, then one test evaluation), at RecTools' configuration:
d = 64, 2 blocks, 1 head, history H, dropout 0.2, Adam lr 1e-3 constant, batches of
128 sequences (``--batch-size`` counts real targets, so 128 x the mean real targets per
window of this split), no early stopping (patience > epochs).

    .venv/bin/python benchmarks/_crossent_speed.py TRAIN.txt REPORT.json --history 50 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from crossent.recsys.data.interactions import leave_last_out
from crossent.recsys.data.loaders import load_sequences
from crossent.recsys.models.objectives import IGNORE
from crossent.recsys.models.sequence import sequence_examples
from crossent.recsys.retrieval import train_retrieval
from crossent.recsys.spec import ModelSpec
from crossent.recsys.training.loop import TrainConfig

SEQUENCES_PER_BATCH = 128  # RecTools' batch_size


def batch_targets(watches, history: int) -> int:
    """Real targets in :data:`SEQUENCES_PER_BATCH` windows of ``watches``' training split."""
    _, targets = sequence_examples(leave_last_out(watches).train, history)
    return round(SEQUENCES_PER_BATCH * int((targets != IGNORE).sum()) / len(targets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("report")
    parser.add_argument("--history", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    watches = load_sequences(args.train)
    batch = batch_targets(watches, args.history)
    started = time.perf_counter()
    result = train_retrieval(
        watches,
        model=ModelSpec(dim=64, history=args.history, dropout=0.2, blocks=2, heads=1),
        objective="full",
        train_config=TrainConfig(epochs=args.epochs, patience=args.epochs + 1, lr=1e-3,
                                 lr_schedule="constant", batch_size=batch),
        baselines=False,
        progress=False,
        eval_users=0,  # validation on every user, as this speed benchmark was measured
    )
    history = result.curves["retrieval"]
    Path(args.report).write_text(json.dumps({
        "contender": "crossent", "torch_threads": torch.get_num_threads(),
        "run_seconds": time.perf_counter() - started, "train_seconds": history.seconds,
        "epochs_run": len(history.train_bits), "valid_ndcg": history.valid_ndcg,
        "batch_targets": batch,
    }, indent=1))


if __name__ == "__main__":
    main()
