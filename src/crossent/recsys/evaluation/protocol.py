"""Evaluation over the full catalogue, the same way for every model and baseline.

Retrieval (candidate generation): for each evaluated user, the scorer scores *every* item; the
items the user watched before (see :meth:`Split.watched`) are excluded; the rank of the
held-out target among the remaining items gives HR@K, Recall@K, NDCG@K and MRR, computed by
:func:`crossent.metrics.ranking_metrics` (pessimistic ties: a constant scorer gets no credit).

A model takes part by implementing :class:`Scorer`: ``score(users, watched) -> (B, n_items)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.metrics.ranking import ranking_metrics
from crossent.recsys.data.interactions import Split, Stage, csr_rows
from crossent.recsys.events import Listener, tracker

_LABELS = {"hit": "HR", "recall": "Recall", "ndcg": "NDCG"}

#: Default number of score cells (users x items) held at once: 2**22 float64 = 32 MiB (the
#: ranking takes a few copies of it, so this bounds the evaluation's extra memory).
DEFAULT_CELLS_PER_BATCH = 2**22


class Scorer(Protocol):
    """Anything that scores the whole catalogue for a batch of users.

    ``score(users, watched)``: ``users`` is ``(B,)`` int64 contiguous user ids; ``watched`` is a
    CSR ``(indptr (B + 1,), items)`` holding, for row ``b``, the items user ``users[b]`` may be
    conditioned on, oldest first (it never includes the target or anything after it). Returns a
    ``(B, n_items)`` array of finite scores (NumPy, or anything ``np.asarray`` accepts, e.g. a
    CPU torch tensor); higher means more likely to be watched next. Excluding already-watched
    items is the evaluator's job, not the scorer's.
    """

    def score(self, users: np.ndarray, watched: tuple[np.ndarray, np.ndarray]) -> np.ndarray: ...


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    checked = []
    for position, k in enumerate(ks):
        checked.append(check_int(k, f"ks[{position}]", low=1))
    if not checked:
        raise CrossentError("ks is empty; give at least one cut-off, e.g. ks=(10,)")
    return tuple(checked)


def _check_users(split: Split, stage: Stage, users: np.ndarray | None) -> np.ndarray:
    target = split.target(stage)
    if users is None:
        return split.users(stage)
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    outside = (users < 0) | (users >= split.n_users)
    if outside.any():
        bad = int(np.flatnonzero(outside)[0])
        raise CrossentError(f"users[{bad}] = {users[bad]} is outside [0, {split.n_users})")
    missing = target[users] < 0
    if missing.any():
        bad = int(np.flatnonzero(missing)[0])
        raise CrossentError(
            f"users[{bad}] = {users[bad]} has no {stage} target (fewer than 3 events)"
        )
    return users


def _batch_scores(
    scorer: Scorer, batch: np.ndarray, watched: tuple[np.ndarray, np.ndarray], n_items: int
) -> np.ndarray:
    raw = scorer.score(batch, watched)
    if hasattr(raw, "detach"):  # a torch tensor: leave autograd, come to host memory
        raw = raw.detach().cpu().numpy()
    scores = np.asarray(raw)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    if scores.shape != (len(batch), n_items):
        raise CrossentError(
            f"scorer.score returned shape {scores.shape}, expected ({len(batch)}, {n_items}) "
            "(batch users x catalogue items)"
        )
    finite = np.isfinite(scores)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise CrossentError(
            f"scorer.score gave user {batch[row]} item {col} "
            f"the non-finite score {scores[row, col]}"
        )
    return scores


def retrieval_metrics(
    scorer: Scorer,
    split: Split,
    stage: Stage = "test",
    *,
    ks: Sequence[int] = (10, 20),
    users: np.ndarray | None = None,
    batch_size: int | None = None,
    exclude_seen: bool = True,
    progress: bool = True,
    listener: Listener | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-user full-catalogue retrieval metrics (see :func:`evaluate_retrieval`).

    Returns:
        ``(users, metrics)``: the evaluated users ``(U,)`` and, for each key of
        :func:`evaluate_retrieval` except ``"users"``, a ``(U,)`` float64 array.
    """
    ks = _check_ks(ks)
    target = split.target(stage)
    n_items = split.n_items
    users = _check_users(split, stage, users)
    if batch_size is None:
        batch_size = max(1, DEFAULT_CELLS_PER_BATCH // max(n_items, 1))
    batch_size = check_int(batch_size, "batch_size", low=1)
    # crossent.metrics key -> the recommender literature's name used in our result dicts
    names = {f"{metric}@{k}": f"{label}@{k}" for k in ks for metric, label in _LABELS.items()}
    names["mrr"] = "MRR"
    per_user = {label: np.zeros(len(users)) for label in names.values()}
    indptr, items = split.watched(stage)
    with tracker(listener if progress else None, f"ranking {stage} targets", len(users)) as track:
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            watched = csr_rows(indptr, items, batch)
            scores = _batch_scores(scorer, batch, watched, n_items)
            rows = np.arange(len(batch))
            seen = None
            reachable = np.ones(len(batch), dtype=bool)
            if exclude_seen:
                seen = np.zeros((len(batch), n_items), dtype=bool)  # (B, n_items)
                seen[np.repeat(rows, np.diff(watched[0])), watched[1]] = True
                # a re-watched target was excluded with the past watches: it cannot be hit
                reachable = ~seen[rows, target[batch]]
                seen = seen[reachable]
            if reachable.any():
                batch_metrics = ranking_metrics(
                    scores[reachable],
                    target[batch][reachable],
                    ks=ks,
                    exclude=seen,
                    reduction="none",
                )
                where = start + np.flatnonzero(reachable)
                for name, label in names.items():
                    per_user[label][where] = batch_metrics[name]
            track.advance(len(batch))
    return users, per_user


def evaluate_retrieval(
    scorer: Scorer,
    split: Split,
    stage: Stage = "test",
    *,
    ks: Sequence[int] = (10, 20),
    users: np.ndarray | None = None,
    batch_size: int | None = None,
    exclude_seen: bool = True,
    progress: bool = True,
    listener: Listener | None = None,
) -> dict[str, float]:
    """Full-catalogue retrieval metrics of ``scorer`` on ``split``'s ``stage`` targets.

    For each evaluated user the scorer scores every item; with ``exclude_seen`` the items in
    the user's past watches (:meth:`Split.watched`: train for "valid", train + validation
    item for "test") are removed from the candidates, and the target's 0-based rank ``r``
    among the rest (ties counted against it) gives ``HR@K = Recall@K = [r < K]`` (one
    held-out item), ``NDCG@K = [r < K] / log2(r + 2)`` and ``MRR = 1 / (r + 1)`` (untruncated),
    averaged over users by :func:`crossent.metrics.ranking_metrics`. A target the user already
    watched (a re-watch) is excluded with the past watches and counts as a miss.

    Scoring is batched over users, so memory stays bounded for any catalogue: by default
    ``batch_size * n_items`` is ``2**24`` score cells (16 users for 1,000,000 items).

    Args:
        scorer: a :class:`Scorer`.
        split: the :class:`~crossent.recsys.data.interactions.Split` to evaluate.
        stage: "valid" or "test".
        ks: cut-offs K.
        users: contiguous user ids to evaluate (default: every user with a ``stage`` target).
        batch_size: users per scoring call.
        exclude_seen: remove past watches from the candidates (the standard protocol).
        progress: report the users ranked so far to ``listener``.
        listener: receives :mod:`~crossent.recsys.events` (none: nothing is reported).

    Returns:
        ``{"HR@K", "Recall@K", "NDCG@K"}`` for each K, ``"MRR"``, and ``"users"`` (how many
        users were evaluated), all floats. (:func:`crossent.metrics.ranking_metrics` calls
        them ``hit@K``, ``recall@K``, ``ndcg@K``, ``mrr``.)

    Raises:
        CrossentError: bad ``ks`` / ``users`` / ``batch_size``, or the scorer returns the
            wrong shape or a non-finite score (named by user and item).

    Example:
        >>> from crossent.recsys.models.baselines import MostPopular
        >>> from crossent.recsys.data.interactions import Interactions, leave_last_out
        >>> watches = Interactions.from_arrays(
        ...     [0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 1, 2, 0, 1, 3, 0, 2, 1], [1, 2, 3] * 3
        ... )
        >>> split = leave_last_out(watches)
        >>> result = evaluate_retrieval(MostPopular().fit(split.train), split, ks=(1,))
        >>> sorted(result), result["users"]
        (['HR@1', 'MRR', 'NDCG@1', 'Recall@1', 'users'], 3.0)
    """
    evaluated, per_user = retrieval_metrics(
        scorer,
        split,
        stage,
        ks=ks,
        users=users,
        batch_size=batch_size,
        exclude_seen=exclude_seen,
        progress=progress,
        listener=listener,
    )
    if len(evaluated) == 0:
        raise CrossentError(f"no user has a {stage} target (every user has fewer than 3 events)")
    result = {name: float(values.mean()) for name, values in per_user.items()}
    result["users"] = float(len(evaluated))
    return result
