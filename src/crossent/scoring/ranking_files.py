"""Score a file of recommendations (top-k per user) against held-out items: ``--ranking``.

The recommendations file has a user and an item column, and optionally a ``rank`` column
(smaller is better) or a ``score`` column (larger is better); without either, each user's rows
are in rank order. The truth file has a user and an item column: the items each user went on
to watch (one or several). For each user of the truth file, with ``r`` the 0-based position of
a relevant item in the user's list (ties in rank or score counted against it, as
:func:`crossent.metrics.ranking_metrics` does):

- ``HR@k``: 1 when a relevant item is among the first ``k``;
- ``Recall@k``: relevant items among the first ``k`` over the user's relevant items;
- ``NDCG@k``: sum over those of ``1 / log2(r + 2)``, over the ideal ``sum_{r < min(k, R)}``;
- ``MRR``: ``1 / (r + 1)`` of the first relevant item anywhere in the list, 0 when none is
  (over the whole catalogue when the list holds it, else MRR at the list's length).

These are the definitions of ``crossent evaluate``. They are averaged over the truth's users;
a user with no recommendations counts as a miss (0 everywhere), and how many there were is
reported. An item listed twice for a user is an error naming both lines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from crossent import io
from crossent._validation.numbers import check_int
from crossent.errors import CrossentError, DataFileError
from crossent.io import tables
from crossent.io.columns import ROLE_NAMES


@dataclass
class RankingFileResult:
    """Ranking metrics of a recommendations file, averaged over the truth's users."""

    k: int
    users: int
    users_without_recommendations: int
    users_not_in_truth: int
    rows: int
    hit_rate: float
    recall: float
    ndcg: float
    mrr: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pairs:
    """User and item ids (codes shared by both files), each row's line and order key."""

    path: Path
    user: NDArray[np.int64]
    item: NDArray[np.int64]
    lines: NDArray[np.int64]
    order: NDArray[np.float64] | None


def _column(path: Path, role: str, available: list[str], given: str | None) -> str | None:
    if given is not None:
        io.check_columns(path, [given], available)
        return given
    return io.pick_column(role, ROLE_NAMES[role], available, how_to_choose=f"pass --{role}-column")


def _read(
    path: Path, user: str | None, item: str | None, ordered: bool
) -> tuple[pa.Array, pa.Array, NDArray[np.int64], NDArray[np.float64] | None]:
    """(user ids, item ids as text, line of each row, order key: smaller ranks first)."""
    available = io.read_columns(path)
    names = []
    for role, given in (("user", user), ("item", item)):
        name = _column(path, role, available, given)
        if name is None:
            raise CrossentError(
                f"{path}: no {role} column; none of {', '.join(ROLE_NAMES[role])} is among its "
                f"columns {', '.join(available)}; pass --{role}-column"
            )
        names.append(name)
    order_name, order_sign = None, 1.0
    if ordered:
        order_name = _column(path, "rank", available, None)
        if order_name is None:
            order_name, order_sign = _column(path, "score", available, None), -1.0
    wanted = [*names, *([order_name] if order_name else [])]
    table = io.read_table(path, wanted, float_columns=wanted[2:])
    tables.check_lines(table)
    user_ids, item_ids = (tables.ids(table, name).cast(pa.string()) for name in names)
    order = None
    if order_name is not None:
        order = np.asarray(tables.numbers(table, order_name), dtype=np.float64) * order_sign
    return user_ids, item_ids, table.lines, order


def score_ranking_file(
    recommendations: str | Path,
    truth: str | Path,
    *,
    k: int = 10,
    user_column: str | None = None,
    item_column: str | None = None,
) -> RankingFileResult:
    """HR@k, Recall@k, NDCG@k and MRR of a recommendations file (see the module docstring).

    Raises:
        CrossentError: a missing file or column, a missing value (file and line named), an
            item listed twice for a user, no user in the truth file.
    """
    k = check_int(k, "k", low=1)
    recs_path, truth_path = io.require_file(recommendations), io.require_file(truth)
    rec_user, rec_item, rec_lines, order = _read(recs_path, user_column, item_column, True)
    true_user, true_item, _, _ = _read(truth_path, user_column, item_column, False)
    users = pc.dictionary_encode(pa.concat_arrays([true_user, rec_user]))
    items = pc.dictionary_encode(pa.concat_arrays([true_item, rec_item]))
    user_codes = np.asarray(users.indices, dtype=np.int64)
    item_codes = np.asarray(items.indices, dtype=np.int64)
    n_truth = len(true_user)
    n_items = len(items.dictionary)
    truth_pairs = np.unique(user_codes[:n_truth] * n_items + item_codes[:n_truth])
    recs = _Pairs(recs_path, user_codes[n_truth:], item_codes[n_truth:], rec_lines, order)
    _check_duplicates(recs, users.dictionary, items.dictionary, n_items)
    truth_users = np.unique(truth_pairs // n_items)
    if truth_users.shape[0] == 0:
        raise CrossentError(f"{truth_path}: no held-out rows; nothing to score")
    per_user = _per_user_metrics(recs, truth_pairs, truth_users, n_items, k)
    listed = np.unique(recs.user)
    return RankingFileResult(
        k=k,
        users=int(truth_users.shape[0]),
        users_without_recommendations=int((~np.isin(truth_users, listed)).sum()),
        users_not_in_truth=int((~np.isin(listed, truth_users)).sum()),
        rows=int(recs.user.shape[0]),
        **{name: float(values.mean()) for name, values in per_user.items()},
    )


def _check_duplicates(recs: _Pairs, users: pa.Array, items: pa.Array, n_items: int) -> None:
    pairs = recs.user * n_items + recs.item
    order = np.argsort(pairs, kind="stable")
    repeated = np.flatnonzero(pairs[order][1:] == pairs[order][:-1])
    if repeated.size:
        first, second = order[repeated[0]], order[repeated[0] + 1]
        first, second = sorted((int(first), int(second)))
        raise DataFileError(
            str(recs.path),
            int(recs.lines[second]),
            f"item {items[int(recs.item[second])].as_py()!r} is listed twice for user "
            f"{users[int(recs.user[second])].as_py()!r} (first at line {recs.lines[first]})",
        )


def _per_user_metrics(
    recs: _Pairs,
    truth_pairs: NDArray[np.int64],
    truth_users: NDArray[np.int64],
    n_items: int,
    k: int,
) -> dict[str, NDArray[np.float64]]:
    relevant = np.isin(recs.user * n_items + recs.item, truth_pairs)
    order_key = (
        np.arange(recs.user.shape[0], dtype=np.float64) if recs.order is None else recs.order
    )
    # rank order within each user; ties in rank/score put the relevant item last (pessimistic)
    order = np.lexsort((relevant, order_key, recs.user))
    user, hit = recs.user[order], relevant[order]
    starts = np.flatnonzero(np.concatenate([[True], user[1:] != user[:-1]]))
    position = np.arange(user.shape[0]) - np.repeat(
        starts, np.diff(np.append(starts, user.shape[0]))
    )
    n_users = int(max(truth_users.max(), user.max() if user.size else 0)) + 1
    n_relevant = np.bincount(truth_pairs // n_items, minlength=n_users).astype(np.float64)
    top = hit & (position < k)
    hits = np.bincount(user[top], minlength=n_users)
    dcg = np.bincount(user[top], weights=1.0 / np.log2(position[top] + 2.0), minlength=n_users)
    ideal_discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    ideal = ideal_discounts[np.minimum(n_relevant, k).astype(np.int64)]
    first = np.full(n_users, np.inf)
    np.minimum.at(first, user[hit], position[hit].astype(np.float64))
    rows = truth_users
    return {
        "hit_rate": (hits[rows] > 0).astype(np.float64),
        "recall": hits[rows] / n_relevant[rows],
        "ndcg": dcg[rows] / ideal[rows],
        "mrr": 1.0 / (first[rows] + 1.0),
    }
