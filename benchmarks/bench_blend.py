"""Blends of saved candidate models, scored on the peers split: which models complement which.

``crossent train`` saves a sequence model blended with the bag model trained beside it
(``crossent/recsys/models/blend.py``): their log-probabilities averaged with weights ``1 - w``
and ``w``. This benchmark measures such blends after the fact, from checkpoints that
``bench_recsys_peers.py --only crossent --work DIR`` (or ``crossent train`` on the same
training file) left in ``DIR/crossent``, without training anything:

- each ``--model NAME=DIR`` alone, as ``crossent recommend --all`` scores it;
- each ``--mix`` (``NAME:WEIGHT,NAME:WEIGHT,...``, weights summing to 1): the weighted mean of
  the models' log-softmaxes over the catalogue, seen items excluded, top 10;
- with ``--buckets 4,6,11``: HR@10 of each row by the user's number of training watches
  (``[0, 4)``, ``[4, 6)``, ``[6, 11)``, ``[11, ...)``), to see where order matters.

The models must come from the same training file (the same user and item id maps: checked).
Scored as ``bench_recsys_peers.py`` scores (``_peers_common.metrics``): HR@10, NDCG@10 and
MRR@10 over every scored user, ± the standard error over users. Nothing here is chosen on
the test items unless the reader does so: report the weights fixed in advance beside any
others looked at.

    .venv/bin/python benchmarks/bench_blend.py --data video \\
        --model s0=/tmp/pv-s0/crossent --model bag=/tmp/pv-bag/crossent \\
        --mix s0:0.5,bag:0.5 --mix s0:0.75,bag:0.25

Quality only (it may share the machine): about a minute per 10 combinations on Video, one
thread.
"""

from __future__ import annotations

import argparse
import sys
from itertools import pairwise

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from _peers_common import make_split, metrics, ranks, read_events
from crossent.recsys.data.interactions import csr_rows
from crossent.recsys.serving.checkpoint import load_checkpoint
from crossent.recsys.serving.recommend import _user_vectors

ROWS = 2000  # users scored at once: (ROWS, n_items) log-probabilities per model


def _mixes(texts: list[str], names: set[str]) -> dict[str, dict[str, float]]:
    mixes: dict[str, dict[str, float]] = {}
    for text in texts:
        parts = {}
        for part in text.split(","):
            name, _, weight = part.partition(":")
            if name not in names:
                raise SystemExit(f"--mix {text}: {name!r} is not one of --model {sorted(names)}")
            parts[name] = float(weight)
        if abs(sum(parts.values()) - 1) > 1e-9:
            raise SystemExit(f"--mix {text}: the weights sum to {sum(parts.values())}, not 1")
        mixes[text] = parts
    return mixes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("video", "ml"), default="video")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--mix", action="append", default=[], metavar="NAME:W,NAME:W")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--buckets", default="", help="history-length edges, e.g. 4,6,11")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = make_split(*read_events(args.data), None)
    checkpoints = {}
    for text in args.model:
        name, _, folder = text.partition("=")
        checkpoints[name] = load_checkpoint(folder)
    first = next(iter(checkpoints.values()))
    for name, checkpoint in checkpoints.items():
        if not (np.array_equal(checkpoint.item_ids, first.item_ids)
                and np.array_equal(checkpoint.user_ids, first.user_ids)):
            raise SystemExit(f"--model {name}: other id maps than the first model's")
    mixes = {name: {name: 1.0} for name in checkpoints} | _mixes(args.mix, set(checkpoints))
    user_index = {int(u): i for i, u in enumerate(first.user_ids.astype(np.int64))}
    item_ids = first.item_ids.astype(np.int64)
    users = np.array([user_index[int(u)] for u in split.test_user])
    indptr, watched = csr_rows(first.watch_indptr, first.watch_items, users)
    vectors = {
        name: _user_vectors([c.candidate], indptr, watched, True)[0]
        for name, c in checkpoints.items()
    }
    tops: dict[str, list[np.ndarray]] = {mix: [] for mix in mixes}
    with torch.no_grad():
        tables = {n: (c.candidate.output_table(), c.candidate.item_bias)
                  for n, c in checkpoints.items()}
        for start in range(0, len(users), ROWS):
            rows = np.arange(start, min(start + ROWS, len(users)))
            log_p = {n: torch.log_softmax(vectors[n][rows] @ table.T + bias, 1)
                     for n, (table, bias) in tables.items()}
            seen_rows = np.repeat(rows - start, np.diff(indptr[rows[0] : rows[-1] + 2]))
            seen_items = watched[indptr[rows[0]] : indptr[rows[-1] + 1]]
            for mix, parts in mixes.items():
                mixed = sum(weight * log_p[name] for name, weight in parts.items())
                assert isinstance(mixed, torch.Tensor)
                mixed[seen_rows, seen_items] = -torch.inf
                tops[mix].append(torch.topk(mixed, 10, 1).indices.numpy())
            print(f"scored {rows[-1] + 1:,} of {len(users):,} users", file=sys.stderr)
    edges = [0] + [int(e) for e in args.buckets.split(",") if e.strip()]
    history = np.diff(indptr)  # training watches of each scored user
    bucket = np.searchsorted(edges, history, side="right") - 1
    spans = [f"[{a}, {b})" for a, b in pairwise(edges)] + [f">= {edges[-1]}"]
    table = Table(title=f"Blends of saved models on {args.data} (peers split, test item)")
    columns = ["model or mix", "HR@10 ± SE", "NDCG@10 ± SE", "MRR@10"]
    if len(edges) > 1:
        columns += [f"HR@10, {span} watches ({(bucket == b).sum():,} users)"
                    for b, span in enumerate(spans)]
    for column in columns:
        table.add_column(column, justify="left" if column == "model or mix" else "right")
    for mix in mixes:
        top = np.concatenate(tops[mix])
        recs = pd.DataFrame({
            "user": np.repeat(split.test_user, 10), "item": item_ids[top.reshape(-1)],
            "rank": np.tile(np.arange(1, 11), len(top)),
        })
        rank = ranks(recs, split, 10)
        m = metrics(rank)
        cells = [mix, f"{m['HR@10']:.4f} ± {m['HR@10 SE']:.4f}",
                 f"{m['NDCG@10']:.4f} ± {m['NDCG@10 SE']:.4f}", f"{m['MRR@10']:.4f}"]
        if len(edges) > 1:
            cells += [f"{(rank[bucket == b] >= 0).mean():.4f}" for b in range(len(spans))]
        table.add_row(*cells)
    table.caption = split.protocol(args.data, None)
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
