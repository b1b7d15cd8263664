"""Ranking examples from a real watch log, which has no impressions: "will this user watch this?"

A log of watches only says what was watched, so labelled examples are built from it in time
order, never letting an example see its future:

- **Positions.** Each user's watches are sorted by time (ties keep row order, as
  :meth:`Interactions.time_order`). The watch at position ``t`` is one positive example.
- **Negatives.** For each positive, ``negatives`` videos (default 4) are drawn with
  replacement from a popularity-proportional proposal ``q_j ∝ n_j + 1`` (``n_j`` = training
  watches of ``j``; the ``+1`` keeps every video drawable), seeded by ``seed``. A draw the user
  had already watched at or before position ``t`` is redrawn (rejection sampling), so a negative
  is "not watched by that user up to then" — it may be watched later, which is not a label
  leak: at that time it had not been. Popular negatives are harder than uniform ones, so
  popularity alone cannot separate the classes.
- **Split.** As :func:`crossent.recsys.data.interactions.leave_last_out`: for users with 3 or more
watches
  the last position is test, the one before validation, the rest train; users with fewer
  watches only train. Each valid/test example group is the user's validation/test watch plus
  its sampled negatives.
- **Features** (those :mod:`crossent.recsys.models.ranking_inputs` computes for simulated
impressions, as far
  as they apply): the user vector from the user's last ``history`` watches strictly before
  position ``t``, the video's output embedding, the retrieval score and video bias of the
  frozen candidate generator, and the log of the number of watches of the video by anyone with
  a timestamp strictly earlier than the example's. There are no impressions, so "times shown"
  and "slot" are 0.

The candidate generator is trained on the leave-last-out training rows, so validation and test
examples are scored by a model that never saw their watches. Training examples scored by that
same model would not be: it was fitted to predict exactly those watches from exactly those
windows, so their retrieval features are sharper than any unseen example's (on ml-latest-small
the mean retrieval score of a positive is 2.8 on training examples, 1.5 on test ones) and a
ranker trained on them over-trusts the features. Hence the **hold-out**: the features come from
a candidate generator trained without each user's last ``holdout`` training watches
(:func:`holdout_split`), and the ranker trains on the examples at those positions only
(:func:`holdout_rows`), which that generator never saw, like validation and test ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions, Split
from crossent.recsys.models.networks import CandidateModel
from crossent.recsys.models.ranking_inputs import RankingInputs, inputs_from_windows

#: Stage codes of :attr:`LoggedExamples.stage`.
STAGES = {"train": 0, "valid": 1, "test": 2}


@dataclass(frozen=True, eq=False)
class LoggedExamples:
    """Labelled (user, video, position) examples built from a watch log.

    Attributes:
        user, item: ``(N,)`` contiguous ids.
        position: ``(N,)`` index of the example's watch in the user's time-ordered watches;
            the features use positions ``< position`` only.
        time: ``(N,)`` timestamp of that watch (the moment the example is asked about).
        label: ``(N,)`` 1.0 for the watch itself, 0.0 for a sampled negative.
        stage: ``(N,)`` 0 train, 1 validation, 2 test (:data:`STAGES`).
        earlier_watches: ``(N,)`` watches of ``item`` by anyone strictly before ``time``.
    """

    user: np.ndarray
    item: np.ndarray
    position: np.ndarray
    time: np.ndarray
    label: np.ndarray
    stage: np.ndarray
    earlier_watches: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def rows(self, stage: str) -> np.ndarray:
        """Indices of the examples of ``stage`` ("train", "valid" or "test")."""
        if stage not in STAGES:
            raise CrossentError(f"stage = {stage!r} must be train, valid or test")
        return np.flatnonzero(self.stage == STAGES[stage])


def logged_examples(
    watches: Interactions, *, negatives: int = 4, seed: int = 0, max_rounds: int = 100
) -> LoggedExamples:
    """Positives at every position of every user's watches, plus sampled negatives.

    Args:
        watches: the whole log (all stages); contiguous ids.
        negatives: sampled negatives per positive (>= 1).
        seed: seed of the negative sampler.
        max_rounds: rejection-sampling rounds; a draw still colliding with the user's
            watches after them is dropped (only possible when a user has watched nearly every
            drawable video).

    Raises:
        CrossentError: ``negatives < 1``, or an empty log.
    """
    check_int(negatives, "negatives", low=1)
    if len(watches) == 0:
        raise CrossentError("cannot build ranking examples from an empty interaction table")
    order = watches.time_order()
    user = watches.user[order]
    item = watches.item[order]
    time = watches.timestamp[order]
    counts = np.bincount(watches.user, minlength=watches.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[user]
    from_end = counts[user] - position  # 1 = last watch
    stage = np.zeros(len(order), dtype=np.int8)
    evaluated = counts[user] >= 3
    stage[evaluated & (from_end == 1)] = STAGES["test"]
    stage[evaluated & (from_end == 2)] = STAGES["valid"]

    # proposal: training popularity (+1), so valid/test watches do not shape the negatives
    train_counts = np.bincount(item[stage == 0], minlength=watches.n_items) + 1.0
    cdf = np.cumsum(train_counts / train_counts.sum())
    rng = np.random.default_rng(seed)
    # first position at which each (user, video) was watched, for the "not yet watched" test
    key = user * watches.n_items + item
    first_key, first_at = np.unique(key, return_index=True)
    first_position = position[first_at]

    owner = np.repeat(np.arange(len(order)), negatives)  # the positive each negative belongs to
    drawn = np.full(len(owner), -1, dtype=np.int64)
    pending = np.arange(len(owner))
    for _ in range(max_rounds):
        if len(pending) == 0:
            break
        choice = np.minimum(
            np.searchsorted(cdf, rng.random(len(pending)), side="right"), watches.n_items - 1
        )
        pair = user[owner[pending]] * watches.n_items + choice
        slot = np.minimum(np.searchsorted(first_key, pair), len(first_key) - 1)
        seen = (first_key[slot] == pair) & (first_position[slot] <= position[owner[pending]])
        drawn[pending[~seen]] = choice[~seen]
        pending = pending[seen]
    kept = drawn >= 0
    owner, drawn = owner[kept], drawn[kept]

    example_of = np.concatenate([np.arange(len(order)), owner])
    example_item = np.concatenate([item, drawn])
    example_time = time[example_of]
    return LoggedExamples(
        user=user[example_of],
        item=example_item,
        position=position[example_of],
        time=example_time,
        label=np.concatenate([np.ones(len(order)), np.zeros(len(owner))]),
        stage=stage[example_of],
        earlier_watches=_earlier_watches(watches, example_item, example_time),
    )


def holdout_split(split: Split, holdout: int) -> Split:
    """``split`` without each user's last ``holdout`` training watches (users with more).

    The candidate generator trained on it never sees the watches :func:`holdout_rows` picks.
    Validation and test targets are unchanged.
    """
    train = split.train
    order = train.time_order()
    counts = np.bincount(train.user, minlength=train.n_users)
    user = train.user[order]
    position = np.arange(len(order)) - (np.cumsum(counts) - counts)[user]
    held = (counts[user] - position <= holdout) & (counts[user] > holdout)
    return Split(
        train=train.take(order[~held], reindex=False),
        valid_target=split.valid_target,
        test_target=split.test_target,
        valid_time=split.valid_time,
        test_time=split.test_time,
    )


def holdout_rows(examples: LoggedExamples, holdout: int) -> np.ndarray:
    """Training examples at each user's last ``holdout`` training positions (users with more).

    Exactly the watches (and their negatives) that :func:`holdout_split` removes.
    """
    train = examples.stage == STAGES["train"]
    # a user's training positions are 0 .. count - 1, one positive each
    counts = np.bincount(
        examples.user[train & (examples.label == 1)], minlength=int(examples.user.max()) + 1
    )
    count = counts[examples.user]
    return np.flatnonzero(train & (count > holdout) & (examples.position >= count - holdout))


def _earlier_watches(watches: Interactions, item: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Number of rows of ``watches`` with video ``item[i]`` and timestamp strictly < ``time[i]``."""
    unique_times = np.unique(watches.timestamp)
    stride = len(unique_times) + 1
    # composite key item * stride + time rank: one sorted array answers every count
    keys = np.sort(watches.item * stride + np.searchsorted(unique_times, watches.timestamp))
    query = item * stride + np.searchsorted(unique_times, time, side="left")
    return np.searchsorted(keys, query, side="left") - np.searchsorted(
        keys, item * stride, side="left"
    )


def history_windows(
    watches: Interactions, user: np.ndarray, position: np.ndarray, history: int, pad: int
) -> torch.Tensor:
    """``(N, history)`` the last ``history`` videos user ``u`` watched before ``position``.

    Padded with ``pad`` on the right where fewer exist (as
    :func:`crossent.recsys.models.networks.windows_from_csr`).
    """
    indptr, items = watches.sequences()
    user = np.asarray(user, dtype=np.int64)
    position = np.asarray(position, dtype=np.int64)
    take = np.minimum(position, history)  # (N,)
    first = indptr[user] + position - take  # index of the oldest watch in the window
    offsets = np.arange(history)[None, :]  # (1, H)
    inside = offsets < take[:, None]  # (N, H)
    index = np.where(inside, first[:, None] + offsets, 0)
    return torch.from_numpy(np.where(inside, items[index], pad))


def logged_ranking_inputs(
    candidate: CandidateModel, watches: Interactions, examples: LoggedExamples, rows: np.ndarray
) -> RankingInputs:
    """Model-ready features of ``examples[rows]`` (see the module docstring)."""
    rows = np.asarray(rows, dtype=np.int64)
    window = history_windows(
        watches,
        examples.user[rows],
        examples.position[rows],
        candidate.config.history,
        candidate.config.n_items,
    )
    return inputs_from_windows(
        candidate,
        window,
        examples.item[rows],
        examples.label[rows],
        examples.earlier_watches[rows].astype(np.float64),
    )
