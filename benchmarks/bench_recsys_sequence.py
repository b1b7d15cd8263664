"""A training epoch of the sequence candidate model: crossent's full softmax vs logits.

    .venv/bin/python benchmarks/bench_recsys_sequence.py            # ml-latest-small-sized
    .venv/bin/python benchmarks/bench_recsys_sequence.py --quick    # a quarter of the users

The same model (self-attention encoder, separate output table), the same batches (each cut to
its longest history, as the training step cuts it) and the same optimiser; only the loss
differs:

- crossent: ``linear_cross_entropy`` over every position (padding via ``ignore_index``), the
  ``(B L, V)`` logits never materialised;
- torch: ``states @ W.T + b`` materialised, then ``torch.nn.functional.cross_entropy``.

Data: the simulated watch log sized like ml-latest-small with ratings >= 4 (610 users, 9,000
videos, about 48,000 watches). Each contender runs ``--epochs`` epochs after a warm-up of a few
steps; the table shows the median epoch time and the peak resident memory of training above
the memory before it. Target (issue 11): crossent at most 1.2x torch's time, and less memory.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from crossent import benchmarking as _benchmarks
from crossent.recsys.data.interactions import leave_last_out
from crossent.recsys.data.simulate import SimulationConfig, simulate
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.models.objectives import IGNORE
from crossent.recsys.models.sequence import leading_padding

Loss = Callable[[CandidateModel, torch.Tensor, torch.Tensor], torch.Tensor]


def crossent_loss(
    model: CandidateModel, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    return model.loss(inputs, targets).sum()


def torch_loss(
    model: CandidateModel, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    # the batch cut to its longest history, as CandidateModel.loss cuts it
    skip = leading_padding(inputs, model.config.n_items)
    inputs, targets = inputs[:, skip:], targets[:, skip:]
    logits = model.states(inputs) @ model.output_table().T + model.item_bias  # (B, L, V)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE,
        reduction="sum",
    )


def run(loss: Loss, config: CandidateConfig, inputs: torch.Tensor, targets: torch.Tensor,
        batch_size: int, epochs: int) -> tuple[float, int, float]:
    """(median epoch seconds, peak extra bytes, last epoch's mean loss) of ``loss``."""
    torch.manual_seed(0)
    model = CandidateModel(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(0))

    def step(rows: torch.Tensor) -> float:
        batch_targets = targets[rows]
        value = loss(model, inputs[rows], batch_targets) / (batch_targets != IGNORE).sum()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        return value.item()

    for first in range(0, 3 * batch_size, batch_size):  # warm-up
        step(order[first : first + batch_size])
    baseline = _benchmarks.status_bytes("VmRSS") or 0
    measured = _benchmarks.reset_peak_rss()
    seconds, mean_loss = [], 0.0
    for _ in range(epochs):
        start, losses = time.perf_counter(), []
        for first in range(0, len(order), batch_size):
            losses.append(step(order[first : first + batch_size]))
        seconds.append(time.perf_counter() - start)
        mean_loss = sum(losses) / len(losses)
    peak = (_benchmarks.status_bytes("VmHWM") or 0) - baseline if measured else -1
    return statistics.median(seconds), max(peak, 0), mean_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=610)
    parser.add_argument("--videos", type=int, default=9000)
    parser.add_argument("--history", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="150 users, 1 epoch")
    args = parser.parse_args()
    users, epochs = (150, 1) if args.quick else (args.users, args.epochs)
    log = simulate(SimulationConfig(
        n_users=users, n_videos=args.videos, min_watches=20, max_watches=140,
        impressions_per_user=0, seed=0,
    ))
    split = leave_last_out(log.interactions)
    config = CandidateConfig(
        n_items=split.n_items, model="sequence", dim=64, history=args.history,
        mask_history=False,
    )
    inputs, targets = CandidateModel(config).examples(split.train)
    print(f"sequence model, one epoch: {users} users, {args.videos} videos, "
          f"{int((targets != IGNORE).sum()):,} training targets in {len(inputs)} windows of "
          f"{args.history}; batch {args.batch_size} windows; {_benchmarks.machine_load()}")
    rows = []
    results = {}
    for name, loss in (("crossent linear_cross_entropy", crossent_loss),
                       ("torch F.cross_entropy on logits", torch_loss)):
        results[name] = run(loss, config, inputs, targets, args.batch_size, epochs)
        print(f"  {name}: {results[name][0]:.2f} s per epoch", flush=True)
    ours = results["crossent linear_cross_entropy"]
    theirs = results["torch F.cross_entropy on logits"]
    for name, (seconds, peak, mean_loss) in results.items():
        rows.append([name, f"{seconds:.2f}", f"{seconds / theirs[0]:.2f}x",
                     f"{peak / 2**20:.0f}", f"{mean_loss:.4f}"])
    print(_benchmarks.format_table(
        ["loss", "epoch (s)", "time vs torch", "peak extra memory (MiB)", "last epoch loss"], rows
    ))
    print(f"crossent / torch: time {ours[0] / theirs[0]:.2f}x (target <= 1.2x), "
          f"peak memory {ours[1] / max(theirs[1], 1):.2f}x (target < 1)")
    print(f"after: {_benchmarks.machine_load()}")


if __name__ == "__main__":
    main()
