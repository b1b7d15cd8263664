"""What to save after early stopping: the early-stopped model, caught up, or refit, on real data.

``crossent train`` chooses its epochs on held-out watches, and those are each user's most
recent ones. This benchmark replays that choice with the library, as ``crossent train`` calls
it, and scores each candidate for "the model that is saved" on watches none of them saw:

- the split of the peers benchmark (``_peers_common``): per user the last interaction is the
  external test item, everything before it the training watches;
- early stopping on one more held-out watch per user (the last training one), with
  ``fit_candidate`` and ``TrainConfig(seed=S, patience=P)``: the **early-stopped** model
  (``--eval-users N``: held out for N users sampled with the seed, as ``crossent train
  --eval-users`` does; every other user trains on all their watches);
- **catch-up N** (``saved_model.catch_up_on_all_watches``, ``crossent train --catch-up N``): that
  model trained N more epochs on every training watch, its rate decaying to 0;
- **refit** (``saved_model.refit_on_all_watches``, ``crossent train --refit``): a fresh model,
  same seed and schedule, trained for the chosen epochs on every training watch
  (``--refit-cosine``: also one whose rate decays to 0 over those epochs).

Each is scored on the external test item, full ranking, seen items excluded: HR@10 and
NDCG@10 over the scored users (a test item the training watches never contain counts as a
miss). Several seeds give mean ± standard error over seeds; with one seed the ± is the
standard error over users.

    .venv/bin/python benchmarks/bench_saved_model.py --data ml --seeds 0,1,2
    .venv/bin/python benchmarks/bench_saved_model.py --data video --seeds 0 --patience 4
    .venv/bin/python benchmarks/bench_saved_model.py --data ml --max-users 200 --epochs 3

How long (one thread): ml-latest-small, a few minutes a seed; Amazon Video, about 1.5 minutes
an epoch (validation included), so tens of minutes to hours. Quality only: it may share the
machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from _peers_common import make_split, read_events
from crossent.recsys.data.interactions import Interactions, Split
from crossent.recsys.evaluation.protocol import evaluate_retrieval
from crossent.recsys.events import EpochEnded
from crossent.recsys.models.networks import CandidateModel
from crossent.recsys.results import RunResult
from crossent.recsys.saved_model import catch_up_on_all_watches, refit_on_all_watches
from crossent.recsys.spec import ModelSpec
from crossent.recsys.training.loop import TrainConfig, fit_candidate


def _last_held_out(
    watches: Interactions, target_item: np.ndarray | None = None, *, sample: int = 0,
    seed: int = 0,
) -> Split:
    """``watches`` minus each user's last row, that row the validation target; or, with
    ``target_item`` (contiguous ids, -1 unknown), all of ``watches`` and those targets.
    ``sample > 0``: only that many users, drawn with ``seed``, are held out (``crossent train
    --eval-users``); the others keep every row."""
    z = np.zeros(watches.n_users, dtype=watches.timestamp.dtype)
    none = np.full(watches.n_users, -1, np.int64)
    if target_item is not None:
        return Split(watches, target_item, none, z, z)
    order = watches.time_order()
    counts = np.bincount(watches.user, minlength=watches.n_users)
    ends = np.cumsum(counts)
    held = counts >= 2
    eligible = np.flatnonzero(held)
    if 0 < sample < len(eligible):
        held = np.zeros_like(held)
        held[np.random.default_rng(seed).choice(eligible, sample, replace=False)] = True
    target = none.copy()
    target[held] = watches.item[order[ends[held] - 1]]
    keep = np.ones(len(watches), bool)
    keep[ends[held] - 1] = False
    return Split(watches.take(order[keep], reindex=False), target, none.copy(), z, z)


def _score(model: CandidateModel, test: Split, n_scored: int) -> dict[str, float]:
    """HR@10 and NDCG@10 over ``n_scored`` users (a user whose test item is unknown: a miss)."""
    found = evaluate_retrieval(model, test, "valid", ks=(10,), progress=False)
    share = len(test.users("valid")) / n_scored
    return {"HR@10": found["HR@10"] * share, "NDCG@10": found["NDCG@10"] * share}


def _log(event: object) -> None:
    """Each finished epoch, one line on stderr (long runs show that they move)."""
    if isinstance(event, EpochEnded):
        print(event.describe(), file=sys.stderr, flush=True)


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, dict[str, float]]:
    split = make_split(*read_events(args.data), args.max_users)
    watches = Interactions.from_arrays(split.train_user, split.train_item)
    user_index = {raw: i for i, raw in enumerate(watches.user_ids.tolist())}
    item_index = {raw: i for i, raw in enumerate(watches.item_ids.tolist())}
    target = np.full(watches.n_users, -1, np.int64)
    for user, item in zip(split.test_user.tolist(), split.test_item.tolist(), strict=True):
        target[user_index[user]] = item_index.get(item, -1)
    test = _last_held_out(watches, target)
    validation = _last_held_out(watches, sample=args.eval_users, seed=seed)
    config = TrainConfig(
        **{"seed": seed, "patience": args.patience, "epochs": args.epochs, **args.train}
    )
    torch.manual_seed(seed)
    model = CandidateModel(ModelSpec(**args.model).candidate(watches.n_items, "full"))
    started = time.perf_counter()
    curves = fit_candidate(model, validation, config, progress=False, listener=_log)
    print(f"seed {seed}: early stopping chose epoch {curves.best_epoch} of "
          f"{len(curves.train_bits)} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    result = RunResult(watches, validation, model, curves={"retrieval": curves})
    rows = {"early-stopped": _score(model, test, len(split.test_user))}
    for n in args.catch_up:
        caught = catch_up_on_all_watches(result, config, n, progress=False, listener=_log)
        rows[f"catch-up {n}"] = _score(caught.candidate, test, len(split.test_user))
    if args.refit:
        refit = refit_on_all_watches(result, config, progress=False, listener=_log)
        rows["refit"] = _score(refit.candidate, test, len(split.test_user))
    if args.refit_cosine:
        cosine = dataclasses.replace(config, lr_schedule="cosine")
        refit = refit_on_all_watches(result, cosine, progress=False, listener=_log)
        rows["refit, rate decaying to 0"] = _score(refit.candidate, test, len(split.test_user))
    for name, row in rows.items():
        row["epochs"] = float(curves.best_epoch)
        print(f"seed {seed}: {name}: HR@10 {row['HR@10']:.4f}, NDCG@10 {row['NDCG@10']:.4f}",
              file=sys.stderr)
    return rows


def _mean_se(values: list[float], users: int) -> str:
    mean = float(np.mean(values))
    if len(values) > 1:
        se = float(np.std(values, ddof=1) / math.sqrt(len(values)))
    else:  # one seed: the binomial-style standard error over users
        se = math.sqrt(max(mean * (1 - mean), 0.0) / max(users, 1))
    return f"{mean:.4f} ± {se:.4f}"


def _fields(pairs: list[str]) -> dict[str, object]:
    """``["dropout=0.5", "lr_schedule=cosine"]`` -> ``{"dropout": 0.5, ...}`` (JSON values,
    else text)."""
    fields: dict[str, object] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        try:
            fields[name] = json.loads(text)
        except json.JSONDecodeError:
            fields[name] = text
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("video", "ml"), default="ml")
    parser.add_argument("--seeds", default="0", help="comma list, e.g. 0,1,2")
    parser.add_argument("--catch-up", default="2", help="comma list of catch-up epochs")
    parser.add_argument("--no-refit", dest="refit", action="store_false")
    parser.add_argument("--refit-cosine", action="store_true",
                        help="also a refit whose rate decays to 0 over the chosen epochs")
    parser.add_argument("--patience", type=int, default=TrainConfig().patience)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs, help="ceiling")
    parser.add_argument("--max-users", type=int, help="only the first N users by id")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-users", type=int, default=0,
                        help="hold out the last training watch of this many sampled users "
                        "only (0: every user)")
    parser.add_argument("--model", nargs="*", default=[], metavar="NAME=VALUE",
                        help="ModelSpec fields other than the defaults, e.g. dropout=0.5")
    parser.add_argument("--train", nargs="*", default=[], metavar="NAME=VALUE",
                        help="TrainConfig fields other than the defaults, e.g. lr=1e-3")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.model, args.train = _fields(args.model), _fields(args.train)
    args.catch_up = [int(n) for n in args.catch_up.split(",") if n.strip()]
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = {seed: run_seed(args, seed) for seed in seeds}
    users = len(make_split(*read_events(args.data), args.max_users).test_user)
    changed = ", ".join(f"{k} = {v}" for k, v in {**args.model, **args.train}.items())
    table = Table(title=f"What is saved after early stopping: {args.data}, seeds {args.seeds}"
                  + (f" ({changed})" if changed else " (the defaults)"))
    for column in ("saved model", "HR@10", "NDCG@10", "per seed HR@10", "chosen epochs"):
        table.add_column(column, justify="left" if column == "saved model" else "right")
    for name in per_seed[seeds[0]]:
        hr = [per_seed[s][name]["HR@10"] for s in seeds]
        ndcg = [per_seed[s][name]["NDCG@10"] for s in seeds]
        table.add_row(
            name, _mean_se(hr, users), _mean_se(ndcg, users), " / ".join(f"{v:.4f}" for v in hr),
            " / ".join(str(int(per_seed[s][name]["epochs"])) for s in seeds),
        )
    table.caption = (
        f"{users:,} users scored on their last interaction (full ranking, seen excluded); "
        "early stopping on each user's last training watch, patience "
        f"{args.patience}; ± is the standard error over seeds (over users with one seed)"
    )
    Console(width=200).print(table)
    if args.json:
        args.json.write_text(json.dumps(
            {"args": {k: v for k, v in vars(args).items() if k != "json"}, "per_seed": per_seed},
            indent=1, default=str,
        ))


if __name__ == "__main__":
    main()
