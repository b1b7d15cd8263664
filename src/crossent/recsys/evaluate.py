"""Evaluation over the full catalogue, the same way for every model and baseline.

Retrieval (candidate generation): for each evaluated user, the scorer scores *every* item; the
items in the user's allowed history (see :meth:`Split.history`) are excluded; the rank of the
held-out target among the remaining items gives Hit@K, Recall@K, NDCG@K and MRR.

A model takes part by implementing :class:`Scorer`: ``score(users, history) -> (B, n_items)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crossent.errors import CrossentError
from crossent.recsys.data import Split, Stage, csr_rows

#: Default number of score cells (users x items) held at once: 2**24 float64 = 128 MiB.
DEFAULT_CELLS_PER_BATCH = 2**24


class Scorer(Protocol):
    """Anything that scores the whole catalogue for a batch of users.

    ``score(users, history)``: ``users`` is ``(B,)`` int64 contiguous user ids; ``history`` is a
    CSR ``(indptr (B + 1,), items)`` holding, for row ``b``, the items user ``users[b]`` may be
    conditioned on, oldest first (it never includes the target or anything after it). Returns a
    ``(B, n_items)`` array of finite scores (NumPy, or anything ``np.asarray`` accepts, e.g. a
    CPU torch tensor); higher means more likely to be watched next. Excluding already-watched
    items is the evaluator's job, not the scorer's.
    """

    def score(self, users: np.ndarray, history: tuple[np.ndarray, np.ndarray]) -> np.ndarray: ...


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    checked = []
    for position, k in enumerate(ks):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise CrossentError(f"ks[{position}] = {k!r} must be an integer >= 1")
        checked.append(int(k))
    if not checked:
        raise CrossentError("ks is empty; give at least one cut-off, e.g. ks=(10,)")
    return tuple(checked)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def retrieval_ranks(
    scorer: Scorer,
    split: Split,
    stage: Stage = "test",
    *,
    users: np.ndarray | None = None,
    batch_size: int | None = None,
    exclude_seen: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of each user's ``stage`` target among all not-yet-watched items.

    The rank counts the candidate items scoring higher than the target **plus** those tied
    with it (ties are resolved against the target), so a scorer that gives every item the
    same score never gets credit. With ``exclude_seen`` the items in the user's allowed
    history are removed from the candidates; a target the user already watched (a re-watch)
    is then unreachable and gets rank ``n_items``.

    Args:
        scorer: a :class:`Scorer`.
        split: the :class:`Split` to evaluate.
        stage: "valid" (history = train) or "test" (history = train + validation item).
        users: contiguous ids to evaluate (default: every user with a ``stage`` target).
        batch_size: users per scoring call; default keeps ``batch_size * n_items`` at
            ``2**24`` cells, so a 1,000,000-item catalogue is scored 16 users at a time.
        exclude_seen: drop the history items from the candidates (the standard protocol).
        progress: show a rich progress bar.

    Returns:
        ``(users, ranks)``: the evaluated users ``(U,)`` and their targets' ranks ``(U,)``.

    Raises:
        CrossentError: bad ``users`` / ``batch_size``, or the scorer returns the wrong shape
            or a non-finite score (named by user and item).
    """
    target = split.target(stage)
    n_items = split.n_items
    if users is None:
        users = split.users(stage)
    else:
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
    if batch_size is None:
        batch_size = max(1, DEFAULT_CELLS_PER_BATCH // max(n_items, 1))
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or (batch_size < 1)
    ):
        raise CrossentError(f"batch_size = {batch_size!r} must be an integer >= 1")
    indptr, items = split.history(stage)
    ranks = np.empty(len(users), dtype=np.int64)
    with _progress(progress) as bar:
        task = bar.add_task(f"ranking {stage} targets", total=len(users))
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            history = csr_rows(indptr, items, batch)
            ranks[start : start + len(batch)] = _batch_ranks(
                scorer, batch, history, target[batch], n_items, exclude_seen
            )
            bar.advance(task, len(batch))
    return users, ranks


def _batch_ranks(
    scorer: Scorer,
    batch: np.ndarray,
    history: tuple[np.ndarray, np.ndarray],
    batch_target: np.ndarray,
    n_items: int,
    exclude_seen: bool,
) -> np.ndarray:
    raw = scorer.score(batch, history)
    if hasattr(raw, "detach"):  # a torch tensor: leave autograd, come to host memory
        raw = raw.detach().cpu().numpy()
    scores = np.array(raw, copy=True)
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
    rows = np.arange(len(batch))
    target_score = scores[rows, batch_target].copy()
    hist_indptr, hist_items = history
    if exclude_seen and len(hist_items):
        seen_rows = np.repeat(rows, np.diff(hist_indptr))
        scores[seen_rows, hist_items] = -np.inf
        target_seen = np.isneginf(scores[rows, batch_target])
    else:
        target_seen = np.zeros(len(batch), dtype=bool)
    # ties count against the target; the target itself is one of the ">=" items
    at_least = (scores >= target_score[:, None]).sum(axis=1) - 1
    return np.where(target_seen, n_items, at_least)


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """Hit@K, Recall@K, NDCG@K and MRR from 0-based ranks of a single target per user.

    With one held-out item per user, Recall@K equals Hit@K: ``[rank < K]``;
    ``NDCG@K = 1 / log2(rank + 2)`` if ``rank < K`` else 0 (the ideal DCG is 1);
    ``MRR = 1 / (rank + 1)`` over the full ranking (not truncated).
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    ks = _check_ks(ks)
    result: dict[str, float] = {}
    if len(ranks) == 0:
        raise CrossentError("no users to evaluate (every user has fewer than 3 events?)")
    for k in ks:
        hit = ranks < k
        result[f"HR@{k}"] = float(hit.mean())
        result[f"Recall@{k}"] = float(hit.mean())
        result[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    result["MRR"] = float((1.0 / (ranks + 1.0)).mean())
    return result


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
) -> dict[str, float]:
    """Full-catalogue retrieval metrics of ``scorer`` on ``split``'s ``stage`` targets.

    Every item is a candidate except those in the user's allowed history (``exclude_seen``).
    Batched over users (see :func:`retrieval_ranks`), so memory stays bounded for any
    catalogue size.

    Returns:
        ``{"HR@K", "Recall@K", "NDCG@K"}`` for each K in ``ks``, ``"MRR"`` and ``"users"``
        (how many users were evaluated), all as floats.

    Example:
        >>> split = leave_last_out(implicit(load_movielens("ml-latest-small"), 4.0))
        >>> evaluate_retrieval(EASE(lam=300.0).fit(split.train), split, ks=(10,))
    """
    ks = _check_ks(ks)
    evaluated, ranks = retrieval_ranks(
        scorer,
        split,
        stage,
        users=users,
        batch_size=batch_size,
        exclude_seen=exclude_seen,
        progress=progress,
    )
    result = ranking_metrics(ranks, ks)
    result["users"] = float(len(evaluated))
    return result
