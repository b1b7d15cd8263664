r"""Recommendations from a checkpoint: one user, a list of users, or every user, in fixed memory.

For a user with watches :math:`W` and candidate-model logits :math:`s_j = u \cdot v_j + b_j`,
the candidates are the unwatched items ranked by :math:`s_j`, each with

.. math::
    P(\text{next watch} = j) = \frac{e^{s_j}}{\sum_{i \notin W} e^{s_i}},

the model's softmax over the unwatched catalogue (the distribution whose cross-entropy training
and evaluation measure; already-watched items are excluded, as in evaluation). With a ranking
stage, the top ``candidates`` of them are re-ranked by the ranking model's P(watch) (the
two-stage flow of Covington et al., RecSys 2016), fed the features it was trained on.

Users are processed in batches and the catalogue in blocks: a batch of ``B`` users against a
block of ``C`` items holds a ``(B, C)`` logit matrix and a running top-K and log-sum-exp
(the online softmax normaliser), so memory does not grow with the catalogue beyond the
model itself. Blocks are at most :data:`BLOCK_ITEMS` wide (a small batch's block stays in
cache), and once the running top-K is full only the chunks of a block that hold a logit above
its K-th value are searched (:func:`_block_top`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import torch

from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.recsys.data.interactions import csr_rows
from crossent.recsys.events import Listener, tracker
from crossent.recsys.models.networks import CandidateModel, windows_from_csr
from crossent.recsys.models.ranking_inputs import inputs_from_user_vectors
from crossent.recsys.serving.checkpoint import Checkpoint

#: logits held at once per batch: users x catalogue block (float32: 64 MiB)
DEFAULT_CELLS = 1 << 24
#: items per catalogue block at most: a small batch's ``(B, block)`` logits stay in cache
BLOCK_ITEMS = 1 << 16
#: items per chunk of the top-k prefilter (:func:`_block_top`)
_CHUNK = 256


@dataclass(frozen=True)
class Recommendations:
    """Top-k unwatched items of a batch of users (contiguous ids), best first.

    Attributes:
        users: ``(B,)`` contiguous user ids.
        items: ``(B, k)`` contiguous item ids; ``-1`` past a user's available items.
        scores: ``(B, k)`` candidate-model logits (``-inf`` where ``items`` is ``-1``).
        probability: ``(B, k)`` P(next watch): softmax of the logits over unwatched items.
        p_watch: ``(B, k)`` the ranking model's P(watch) (its odds of watch time for a
            "watch-time" model), or ``None`` without a ranking stage.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    probability: np.ndarray
    p_watch: np.ndarray | None


#: with ``cut_padding``, histories are encoded in groups of alike length (up to 16, 32, 64,
#: 128, longer), each as wide as its longest; a group whose cut saves at most ``_MERGE``
#: padded positions joins the next one (an encoder call costs about that much)
_GROUP_BOUNDS, _MERGE = np.array([16, 32, 64, 128]), 256


def _groups(lengths: np.ndarray, width: int, cut_padding: bool) -> list[tuple[np.ndarray, int]]:
    """``(rows, window width)`` of each encoder call (see :data:`_GROUP_BOUNDS`)."""
    if not cut_padding:
        return [(np.arange(len(lengths)), width)]
    lengths = np.minimum(lengths, width)
    bucket = np.searchsorted(_GROUP_BOUNDS, lengths)
    values, groups, carry = np.unique(bucket), [], np.zeros(0, dtype=np.int64)
    for position, value in enumerate(values):
        rows = np.concatenate([carry, np.flatnonzero(bucket == value)])
        cut, carry = max(1, int(lengths[rows].max())), np.zeros(0, dtype=np.int64)
        if position + 1 < len(values):
            following = int(lengths[bucket == values[position + 1]].max())
            if len(rows) * (following - cut) <= _MERGE:
                carry = rows
                continue
        groups.append((rows, cut))
    return groups


def _user_vectors(
    models: Sequence[CandidateModel], indptr: np.ndarray, watched: np.ndarray, cut_padding: bool
) -> list[torch.Tensor]:
    """Each model's ``(B, d)`` user vectors, each window (``models[0]``'s width, cut in
    :func:`_groups`) encoded once; a sequence model's last block for the last position only."""
    n_items, width = models[0].config.n_items, models[0].config.history
    # a vector is as wide as the output table it meets (a blend's is its members' together)
    vectors = [torch.empty(len(indptr) - 1, model.output_table().shape[1]) for model in models]
    with torch.no_grad():
        for group, cut in _groups(np.diff(indptr), width, cut_padding):
            index = torch.from_numpy(group)
            window = windows_from_csr(indptr, watched, cut, n_items)[index]  # (rows, cut)
            for model, out in zip(models, vectors, strict=True):
                out[index] = model.inference_vector(window)
    return vectors


def _block_top(
    logits: torch.Tensor, keep: int, kth: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)``: a ``(B, C)`` block's best ``keep`` logits per row. Given the
    running list's ``keep``-th values ``kth (B,)``, only the :data:`_CHUNK`-item chunks whose
    maximum beats ``kth`` go to ``topk`` (an item at or below it would fall behind the list's
    ``keep`` entries in the stable merge anyway): once the list is good, few chunks do."""
    n_rows, width = logits.shape
    if kth is not None and width % _CHUNK == 0:
        chunks = logits.view(n_rows, width // _CHUNK, _CHUNK)
        live = chunks.amax(2) > kth[:, None]  # (B, chunks): chunks holding a candidate
        count = live.sum(1)
        most = int(count.max())
        if most * 4 <= live.shape[1]:  # else the whole block is as cheap
            rows, which = live.nonzero(as_tuple=True)  # row-major: each row's chunks in order
            slot = torch.arange(len(rows)) - (torch.cumsum(count, 0) - count)[rows]
            values = torch.full((n_rows, most, _CHUNK), -torch.inf)
            values[rows, slot] = chunks[rows, which]
            items = torch.zeros((n_rows, most, _CHUNK), dtype=torch.int64)
            items[rows, slot] = which[:, None] * _CHUNK + torch.arange(_CHUNK)
            top = torch.topk(values.view(n_rows, -1), min(keep, most * _CHUNK), dim=1)
            return top.values, items.view(n_rows, -1).gather(1, top.indices)
    top = torch.topk(logits, min(keep, width), dim=1)
    return top.values, top.indices


def _top_unwatched(
    model: CandidateModel,
    user: torch.Tensor,
    indptr: np.ndarray,
    watched: np.ndarray,
    keep: int,
    cells: int,
    columns: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits (B, keep), items (B, keep), log normaliser (B,))`` of the best unwatched items
    of user vectors ``user`` (watches: the CSR), over catalogue blocks (a running top-K)."""
    n_items, n_rows = model.config.n_items, len(indptr) - 1
    seen_rows = torch.from_numpy(np.repeat(np.arange(n_rows), np.diff(indptr)))
    seen_items = torch.from_numpy(watched.astype(np.int64))
    block = max(1, min(cells // max(n_rows, 1), BLOCK_ITEMS))
    best = torch.full((n_rows, 0), -torch.inf)
    best_items = torch.zeros((n_rows, 0), dtype=torch.int64)
    log_normaliser = torch.full((n_rows,), -torch.inf, dtype=torch.float64)
    with torch.no_grad():
        table = model.output_table()  # (n_items, d); the input embeddings when tied
        for start in range(0, n_items, block):
            stop = min(start + block, n_items)
            right = table[start:stop].T if columns is None else columns[:, start:stop]
            logits = torch.addmm(model.item_bias[start:stop], user, right)  # u · v_j + b_j
            inside = (seen_items >= start) & (seen_items < stop)
            logits[seen_rows[inside], seen_items[inside] - start] = -torch.inf
            # the normaliser block by block: log-sum-exp within, logaddexp (float64) across
            log_normaliser = torch.logaddexp(log_normaliser, torch.logsumexp(logits, 1).double())
            kth = best[:, -1] if best.shape[1] == keep else None
            values, indices = _block_top(logits, keep, kth)
            merged = torch.cat([best, values], 1)
            merged_items = torch.cat([best_items, indices + start], 1)
            # stable: among equal logits, the item of the earlier block stays first
            order = torch.sort(merged, dim=1, descending=True, stable=True).indices[:, :keep]
            best, best_items = merged.gather(1, order), merged_items.gather(1, order)
    return best, best_items, log_normaliser


def _rank_stage(
    checkpoint: Checkpoint, user: torch.Tensor, items: torch.Tensor, watch_count: np.ndarray
) -> torch.Tensor:
    """``(B, K)`` the ranking model's output for each user's candidates (``items`` >= 0), from
    ``user``: the ``(B, d)`` user vectors of the features' candidate model, one per user."""
    ranking = checkpoint.ranking
    assert ranking is not None
    features = checkpoint.ranking_candidate or checkpoint.candidate
    n_users, n_candidates = items.shape
    flat = items.reshape(-1).clamp_min(0).numpy()
    repeated = user.repeat_interleave(n_candidates, dim=0)  # (B K, d): B vectors, no encoding
    label = np.zeros(len(flat))  # unused; no context at recommendation time (times shown, slot 0)
    inputs = inputs_from_user_vectors(features, repeated, flat, label, watch_count[flat])
    with torch.no_grad():
        logits = ranking(inputs.user, inputs.item, inputs.dense).double()
    output = torch.exp(logits) if ranking.config.loss == "watch-time" else torch.sigmoid(logits)
    return output.reshape(n_users, n_candidates)


def recommend_users(
    checkpoint: Checkpoint,
    users: np.ndarray,
    k: int = 10,
    *,
    candidates: int = 100,
    rank: bool = True,
    cells: int = DEFAULT_CELLS,
    watch_count: np.ndarray | None = None,
) -> Recommendations:
    """Top-``k`` unwatched items for contiguous user ids ``users`` (see the module docstring).

    Args:
        candidates: with a ranking stage (and ``rank``), how many of the candidate model's
            best items the ranking model re-ranks; ``k`` of them are returned.
        rank: use the ranking stage when the checkpoint has one.
        cells: logits held at once (users x catalogue block); bounds the memory.
        watch_count: ``(n_items,)`` watches per item in the checkpoint (computed if absent).
    """
    users = np.asarray(users, dtype=np.int64)
    indptr, watched = csr_rows(checkpoint.watch_indptr, checkpoint.watch_items, users)
    found = recommend_histories(
        checkpoint,
        indptr,
        watched,
        k,
        candidates=candidates,
        rank=rank,
        cells=cells,
        watch_count=watch_count,
    )
    return dataclasses.replace(found, users=users)


def recommend_histories(
    checkpoint: Checkpoint,
    indptr: np.ndarray,
    watched: np.ndarray,
    k: int = 10,
    *,
    candidates: int = 100,
    rank: bool = True,
    cells: int = DEFAULT_CELLS,
    watch_count: np.ndarray | None = None,
    cut_padding: bool = False,
    columns: torch.Tensor | None = None,
) -> Recommendations:
    """Top-``k`` unwatched items for any watch histories, given as a CSR of contiguous ids.

    What :func:`recommend_users` computes for the checkpoint's users, for histories the model
    never saw (someone new, or a batch of requests to a server): row ``i``'s watches are
    ``watched[indptr[i]:indptr[i + 1]]``, oldest first, and are excluded from its items. The
    result's ``users`` are the row numbers ``0..B-1``. Arguments as in :func:`recommend_users`;
    ``cut_padding`` cuts windows to the longest history (padding is never attended to: the
    same answer up to float rounding). ``columns``: the candidate model's ``output_table()``
    transposed, ``(d, n_items)`` contiguous, kept by a server (a faster catalogue sweep).

    Example: two people, one who watched items 3 then 7, one who watched nothing::

        recommend_histories(checkpoint, np.array([0, 2, 2]), np.array([3, 7]), k=5)
    """
    for name, value in (("k", k), ("candidates", candidates), ("cells", cells)):
        check_int(value, name, low=1)
    indptr = np.asarray(indptr, dtype=np.int64)
    watched = np.asarray(watched, dtype=np.int64)
    n_items = checkpoint.candidate.config.n_items
    two_stage = rank and checkpoint.ranking is not None
    keep = min(max(k, candidates) if two_stage else k, n_items)
    # each window encoded once per model: the ranking features reuse these unless made by another
    models = [checkpoint.candidate]
    if two_stage and checkpoint.ranking_candidate not in (None, checkpoint.candidate):
        models.append(checkpoint.ranking_candidate)
    vectors = _user_vectors(models, indptr, watched, cut_padding)
    logits, items, log_normaliser = _top_unwatched(
        checkpoint.candidate, vectors[0], indptr, watched, keep, cells, columns
    )
    available = torch.isfinite(logits)
    items = torch.where(available, items, -1)
    probability = torch.exp(logits.double() - log_normaliser[:, None])
    p_watch = None
    if two_stage:
        if watch_count is None:
            watch_count = np.bincount(checkpoint.watch_items, minlength=n_items)
        count = np.asarray(watch_count, dtype=np.float64)  # no copy when already float64
        p_watch = _rank_stage(checkpoint, vectors[-1], items, count)
        p_watch = torch.where(available, p_watch, -torch.inf)
        order = torch.sort(p_watch, dim=1, descending=True, stable=True).indices[:, :k]
        logits, items = logits.gather(1, order), items.gather(1, order)
        probability, p_watch = probability.gather(1, order), p_watch.gather(1, order)
        p_watch = torch.where(items >= 0, p_watch, torch.nan)
    else:
        logits, items, probability = logits[:, :k], items[:, :k], probability[:, :k]
    return Recommendations(
        users=np.arange(len(indptr) - 1, dtype=np.int64),
        items=items.numpy(),
        scores=logits.double().numpy(),
        probability=probability.numpy(),
        p_watch=None if p_watch is None else p_watch.numpy(),
    )


def recommend_batches(
    checkpoint: Checkpoint,
    users: np.ndarray,
    k: int = 10,
    *,
    batch_users: int = 256,
    candidates: int = 100,
    rank: bool = True,
    cells: int = DEFAULT_CELLS,
) -> Iterator[Recommendations]:
    """:func:`recommend_users` over ``users`` in batches of ``batch_users`` (fixed memory)."""
    check_int(batch_users, "batch_users", low=1)
    users = np.asarray(users, dtype=np.int64)
    count = np.bincount(checkpoint.watch_items, minlength=checkpoint.candidate.config.n_items)
    for start in range(0, len(users), batch_users):
        yield recommend_users(
            checkpoint,
            users[start : start + batch_users],
            k,
            candidates=candidates,
            rank=rank,
            cells=cells,
            watch_count=count,
        )


def recent_watches(checkpoint: Checkpoint, user: int, n: int) -> np.ndarray:
    """Contiguous ids of ``user``'s last ``n`` watches, most recent first."""
    start, stop = checkpoint.watch_indptr[user], checkpoint.watch_indptr[user + 1]
    return checkpoint.watch_items[max(start, stop - n) : stop][::-1]


def recommendation_table(checkpoint: Checkpoint, batch: Recommendations) -> pa.Table:
    """One row per recommendation: user, rank, item (original ids), score, probability,
    ``p_watch`` with a ranking stage, and title when the checkpoint has titles."""
    valid = batch.items >= 0  # (B, k)
    row, column = np.nonzero(valid)
    items = batch.items[row, column]
    columns: dict[str, pa.Array] = {
        "user": pa.array(checkpoint.user_ids[batch.users[row]]),
        "rank": pa.array(column + 1, type=pa.int32()),
        "item": pa.array(checkpoint.item_ids[items]),
        "score": pa.array(batch.scores[row, column]),
        "probability": pa.array(batch.probability[row, column]),
    }
    if batch.p_watch is not None:
        columns["p_watch"] = pa.array(batch.p_watch[row, column])
    if checkpoint.titles is not None:
        columns["title"] = pa.array(checkpoint.titles[items], type=pa.string())
    return pa.table(columns)


def write_recommendations(
    checkpoint: Checkpoint,
    users: np.ndarray,
    out: str | Path,
    k: int = 10,
    *,
    batch_users: int = 256,
    candidates: int = 100,
    rank: bool = True,
    cells: int = DEFAULT_CELLS,
    listener: Listener | None = None,
) -> int:
    """Write :func:`recommendation_table` rows for ``users`` to ``out`` (``.parquet`` or
    ``.csv``), batch by batch, so memory stays fixed; returns the number of rows.

    ``listener`` hears the users done so far (:class:`~crossent.recsys.events.Progress`)."""
    path = Path(out)
    if path.suffix not in (".parquet", ".csv"):
        raise CrossentError(f"--out {str(path)!r}: the file name must end in .parquet or .csv")
    if not path.parent.is_dir():
        raise CrossentError(f"--out {str(path)!r}: folder {str(path.parent)!r} does not exist")
    writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
    rows = 0
    batches = recommend_batches(
        checkpoint, users, k, batch_users=batch_users, candidates=candidates, rank=rank,
        cells=cells,
    )
    with tracker(listener, "recommending", len(users)) as track:
        try:
            for batch in batches:
                table = recommendation_table(checkpoint, batch)
                if writer is None:
                    writer = (
                        pq.ParquetWriter(path, table.schema)
                        if path.suffix == ".parquet"
                        else pa_csv.CSVWriter(path, table.schema)
                    )
                writer.write_table(table)
                rows += len(table)
                track.advance(len(batch.users))
        finally:
            if writer is not None:
                writer.close()
    return rows
