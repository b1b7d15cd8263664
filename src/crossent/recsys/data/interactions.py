"""Interaction logs: the :class:`Interactions` table, filters and the leave-last-out split.

An :class:`Interactions` table holds one row per (user, item, time) event with users and items
re-indexed to contiguous ids ``0..n_users-1`` / ``0..n_items-1``; the original ids are kept in
``user_ids`` / ``item_ids`` (sorted ascending, so contiguous id ``i`` is the ``i``-th smallest
original id). Loaders for files live in :mod:`crossent.recsys.data.loaders`.

Time order is always "by timestamp, ties in row (file) order": every sort here is stable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from crossent._validation.numbers import check_int, check_number
from crossent.errors import CrossentError

Stage = Literal["valid", "test"]


def _as_1d(name: str, values: object, n: int | None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise CrossentError(f"{name} must be 1-D, got shape {array.shape}")
    if n is not None and len(array) != n:
        raise CrossentError(f"{name} has {len(array)} rows, expected {n} (as many as user)")
    return array


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def contiguous_ids(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary ids to ``0..k-1`` in ascending order of the original id.

    Returns ``(index, original)`` with ``original[index] == raw``.
    """
    raw = np.asarray(raw)
    if raw.dtype.kind in "iu" and len(raw):
        low, high = int(raw.min()), int(raw.max())
        if high - low <= 4 * len(raw) + 2**20:
            # dense integer ids (MovieLens): a lookup table is O(n), no sort of all n rows
            present = np.zeros(high - low + 1, dtype=bool)
            present[raw - low] = True
            original = (np.flatnonzero(present) + low).astype(raw.dtype)
            lookup = np.cumsum(present, dtype=np.int64) - 1
            return lookup[raw - low], original
    original, index = np.unique(raw, return_inverse=True)
    return index.astype(np.int64, copy=False).reshape(-1), original


@dataclass(frozen=True, eq=False)
class Interactions:
    """A time-stamped interaction log with contiguous user and item ids.

    Attributes:
        user: ``(n,)`` int64 contiguous user id of each row, in ``[0, n_users)``.
        item: ``(n,)`` int64 contiguous item id of each row, in ``[0, n_items)``.
        timestamp: ``(n,)`` int64 or float64 time of each row (finite); ties keep row order.
        rating: ``(n,)`` float64 explicit rating, or ``None``.
        watch_time: ``(n,)`` float64 watch time (any unit), or ``None``.
        user_ids: ``(n_users,)`` original id of each contiguous user id.
        item_ids: ``(n_items,)`` original id of each contiguous item id.

    Build one from raw ids with :meth:`from_arrays`; the constructor checks consistency.
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    rating: np.ndarray | None
    watch_time: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __post_init__(self) -> None:
        user = _as_1d("user", self.user, None).astype(np.int64, copy=False)
        n = len(user)
        item = _as_1d("item", self.item, n).astype(np.int64, copy=False)
        timestamp = _as_1d("timestamp", self.timestamp, n)
        if timestamp.dtype.kind not in "iuf":
            raise CrossentError(f"timestamp must be numeric, got dtype {timestamp.dtype}")
        timestamp = timestamp.astype(
            np.float64 if timestamp.dtype.kind == "f" else np.int64, copy=False
        )
        if timestamp.dtype.kind == "f" and not np.isfinite(timestamp).all():
            bad = _first_bad(~np.isfinite(timestamp))
            raise CrossentError(f"timestamp[{bad}] = {timestamp[bad]} is not finite")
        user_ids = _as_1d("user_ids", self.user_ids, None)
        item_ids = _as_1d("item_ids", self.item_ids, None)
        for name, index, size in (("user", user, len(user_ids)), ("item", item, len(item_ids))):
            outside = (index < 0) | (index >= size)
            if outside.any():
                bad = _first_bad(outside)
                raise CrossentError(
                    f"{name}[{bad}] = {index[bad]} is outside [0, {size}) "
                    f"(the length of {name}_ids)"
                )
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "item", item)
        object.__setattr__(self, "timestamp", timestamp)
        object.__setattr__(self, "user_ids", user_ids)
        object.__setattr__(self, "item_ids", item_ids)
        for name in ("rating", "watch_time"):
            values = getattr(self, name)
            if values is None:
                continue
            values = _as_1d(name, values, n).astype(np.float64, copy=False)
            if not np.isfinite(values).all():
                bad = _first_bad(~np.isfinite(values))
                raise CrossentError(f"{name}[{bad}] = {values[bad]} is not finite")
            object.__setattr__(self, name, values)

    @classmethod
    def from_arrays(
        cls,
        user: object,
        item: object,
        timestamp: object | None = None,
        *,
        rating: object | None = None,
        watch_time: object | None = None,
    ) -> Interactions:
        """Build a table from raw (original) ids; ``timestamp=None`` uses row order as time."""
        raw_user = _as_1d("user", user, None)
        raw_item = _as_1d("item", item, len(raw_user))
        if timestamp is None:
            timestamp = np.arange(len(raw_user), dtype=np.int64)
        user_index, user_ids = contiguous_ids(raw_user)
        item_index, item_ids = contiguous_ids(raw_item)
        return cls(
            user=user_index,
            item=item_index,
            timestamp=_as_1d("timestamp", timestamp, len(raw_user)),
            rating=None if rating is None else _as_1d("rating", rating, len(raw_user)),
            watch_time=(
                None if watch_time is None else _as_1d("watch_time", watch_time, len(raw_user))
            ),
            user_ids=user_ids,
            item_ids=item_ids,
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    def __repr__(self) -> str:
        extras = [name for name in ("rating", "watch_time") if getattr(self, name) is not None]
        return (
            f"Interactions({len(self)} rows, {self.n_users} users, {self.n_items} items"
            + (f", with {' and '.join(extras)}" if extras else "")
            + ")"
        )

    def time_order(self) -> np.ndarray:
        """Row permutation sorting by (user, timestamp); ties keep row order (stable sorts)."""
        by_time = np.argsort(self.timestamp, kind="stable")
        return by_time[np.argsort(self.user[by_time], kind="stable")]

    def sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Each user's items in time order, as CSR.

        Returns:
            ``(indptr, items)``: ``indptr`` is ``(n_users + 1,)`` int64 and user ``u``'s items,
            oldest first, are ``items[indptr[u]:indptr[u + 1]]``.
        """
        order = self.time_order()
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.user, minlength=self.n_users), out=indptr[1:])
        return indptr, self.item[order]

    def take(self, rows: np.ndarray, *, reindex: bool = True) -> Interactions:
        """The table restricted to ``rows`` (indices or a boolean mask).

        With ``reindex=True`` users and items left without rows are dropped and ids are made
        contiguous again (original ids kept); otherwise the id space is unchanged.
        """
        user, item = self.user[rows], self.item[rows]
        user_ids, item_ids = self.user_ids, self.item_ids
        if reindex:
            kept_users, user = np.unique(user, return_inverse=True)
            kept_items, item = np.unique(item, return_inverse=True)
            user_ids, item_ids = user_ids[kept_users], item_ids[kept_items]
        return Interactions(
            user=user.reshape(-1),
            item=item.reshape(-1),
            timestamp=self.timestamp[rows],
            rating=None if self.rating is None else self.rating[rows],
            watch_time=None if self.watch_time is None else self.watch_time[rows],
            user_ids=user_ids,
            item_ids=item_ids,
        )


def implicit(inter: Interactions, min_rating: float = 4.0) -> Interactions:
    """Keep the rows with ``rating >= min_rating`` as implicit "watches"; re-index the ids.

    Users and items left without rows are dropped; ``user_ids`` / ``item_ids`` keep the
    original ids. The rating column is kept.

    Raises:
        CrossentError: the table has no rating column, or ``min_rating`` is not finite.
    """
    if inter.rating is None:
        raise CrossentError("implicit() needs a rating column; this table has none")
    check_number(min_rating, "min_rating")
    return inter.take(inter.rating >= min_rating)


def k_core(inter: Interactions, k: int, *, item_k: int | None = None) -> Interactions:
    """Iteratively drop users with fewer than ``k`` rows and items with fewer than ``item_k``.

    Dropping an item can push a user below ``k`` and vice versa, so the filter repeats until
    every remaining user has ``>= k`` rows and every remaining item ``>= item_k`` rows
    (``item_k`` defaults to ``k``). Rows are counted, so repeated (user, item) pairs count
    each time. Ids are re-indexed contiguously; original ids are kept.
    """
    item_k = k if item_k is None else item_k
    for name, value in (("k", k), ("item_k", item_k)):
        check_int(value, name, low=1)
    keep = np.ones(len(inter), dtype=bool)
    while True:
        user_count = np.bincount(inter.user[keep], minlength=inter.n_users)
        item_count = np.bincount(inter.item[keep], minlength=inter.n_items)
        new_keep = keep & (user_count[inter.user] >= k) & (item_count[inter.item] >= item_k)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    return inter.take(keep)


@dataclass(frozen=True, eq=False)
class Split:
    """A time-ordered leave-last-out split (see :func:`leave_last_out`).

    All parts share the id space of the table that was split (``n_users``, ``n_items``).

    Attributes:
        train: the training rows (every user's events before the validation one).
        valid_target: ``(n_users,)`` int64 validation item per user, ``-1`` if none.
        test_target: ``(n_users,)`` int64 test item per user, ``-1`` if none.
        valid_time: ``(n_users,)`` timestamp of the validation event (undefined where -1).
        test_time: ``(n_users,)`` timestamp of the test event (undefined where -1).
    """

    train: Interactions
    valid_target: np.ndarray
    test_target: np.ndarray
    valid_time: np.ndarray
    test_time: np.ndarray

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def target(self, stage: Stage) -> np.ndarray:
        """``(n_users,)`` target item of ``stage`` ("valid" or "test"), ``-1`` where none."""
        if stage == "valid":
            return self.valid_target
        if stage == "test":
            return self.test_target
        raise CrossentError(f'stage = {stage!r} must be "valid" or "test"')

    def users(self, stage: Stage) -> np.ndarray:
        """Contiguous ids of the users that have a ``stage`` target."""
        return np.flatnonzero(self.target(stage) >= 0)

    def eligible_users(self) -> int:
        """Users with 3 or more events, who could have been evaluated (all of them are, unless
        :func:`leave_last_out` sampled ``max_users`` of them)."""
        counts = np.bincount(self.train.user, minlength=self.n_users)
        return int((counts + 2 * (self.test_target >= 0) >= 3).sum())

    def watched(self, stage: Stage) -> tuple[np.ndarray, np.ndarray]:
        """The events a model may use to predict the ``stage`` target, as CSR in time order.

        "valid": the training events only. "test": the training events followed by the
        validation item (for users that have one). Never anything at or after the target.

        Returns:
            ``(indptr, items)`` as :meth:`Interactions.sequences`.
        """
        self.target(stage)  # validates stage
        indptr, items = self.train.sequences()
        if stage == "valid":
            return indptr, items
        has_valid = self.valid_target >= 0
        # every user has >= 1 training row, so the insertion points are distinct segment ends
        items = np.insert(items, indptr[1:][has_valid], self.valid_target[has_valid])
        counts = np.diff(indptr) + has_valid
        new_indptr = np.zeros_like(indptr)
        np.cumsum(counts, out=new_indptr[1:])
        return new_indptr, items


def leave_last_out(inter: Interactions, *, max_users: int = 0, seed: int = 0) -> Split:
    """Split each user's time-ordered events: last = test, second-to-last = validation.

    Per user, events are sorted by timestamp (ties keep row order). The last event is the test
    target, the one before it the validation target, and the rest are training rows, so
    validation is predicted from training rows only and test from training rows plus the
    validation item — never from the future.

    Users with fewer than 3 events keep them all in ``train`` and get no targets (``-1``):
    they still shape item statistics but are not evaluated.

    With ``max_users > 0`` and more users than that eligible, only ``max_users`` of them, drawn
    uniformly without replacement with ``seed``, are evaluated; every other user keeps all
    their events in ``train``. On short histories the last two events are a large share of
    what a user did, so a model that trains on them for most users learns more, while a few
    thousand users already measure the validation curve that early stopping reads.

    Example:
        >>> import numpy as np
        >>> watches = Interactions.from_arrays(np.repeat(np.arange(4), 3), np.arange(12) % 5)
        >>> len(leave_last_out(watches).users("test"))
        4
        >>> split = leave_last_out(watches, max_users=2, seed=0)
        >>> len(split.users("test")), len(split.train)
        (2, 8)

    Raises:
        CrossentError: the table is empty.
    """
    if len(inter) == 0:
        raise CrossentError("cannot split an empty interaction table")
    check_int(max_users, "max_users", low=0)
    order = inter.time_order()
    counts = np.bincount(inter.user, minlength=inter.n_users)
    ends = np.cumsum(counts)  # one past each user's last sorted position
    evaluated = counts >= 3
    eligible = np.flatnonzero(evaluated)
    if 0 < max_users < len(eligible):
        evaluated = np.zeros_like(evaluated)
        evaluated[np.random.default_rng(seed).choice(eligible, max_users, replace=False)] = True
    test_pos = ends[evaluated] - 1
    valid_pos = ends[evaluated] - 2
    valid_target = np.full(inter.n_users, -1, dtype=np.int64)
    test_target = np.full(inter.n_users, -1, dtype=np.int64)
    valid_time = np.zeros(inter.n_users, dtype=inter.timestamp.dtype)
    test_time = np.zeros(inter.n_users, dtype=inter.timestamp.dtype)
    valid_target[evaluated] = inter.item[order[valid_pos]]
    test_target[evaluated] = inter.item[order[test_pos]]
    valid_time[evaluated] = inter.timestamp[order[valid_pos]]
    test_time[evaluated] = inter.timestamp[order[test_pos]]
    train_sorted = np.ones(len(inter), dtype=bool)
    train_sorted[test_pos] = False
    train_sorted[valid_pos] = False
    train = inter.take(order[train_sorted], reindex=False)
    return Split(
        train=train,
        valid_target=valid_target,
        test_target=test_target,
        valid_time=valid_time,
        test_time=test_time,
    )


def csr_rows(
    indptr: np.ndarray, items: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gather rows of a CSR ``(indptr, items)`` into a new CSR, in the order of ``rows``.

    Used to hand a batch of users' histories to a scorer: ``csr_rows(*split.watched("test"),
    users)``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    starts, stops = indptr[rows], indptr[rows + 1]
    counts = stops - starts
    new_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_indptr[1:])
    # position of each gathered element = its row's start + its offset within the row
    offsets = np.arange(new_indptr[-1], dtype=np.int64) - np.repeat(new_indptr[:-1], counts)
    return new_indptr, items[np.repeat(starts, counts) + offsets]
