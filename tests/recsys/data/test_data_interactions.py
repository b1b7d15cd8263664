"""Interactions, implicit / k-core filters and the leave-last-out split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossent.errors import CrossentError
from crossent.recsys.data.interactions import (
    Interactions,
    contiguous_ids,
    csr_rows,
    implicit,
    k_core,
    leave_last_out,
)


def _table(rows: list[tuple[object, object, float]], rating: list[float] | None = None):
    users, items, times = zip(*rows, strict=True)
    return Interactions.from_arrays(list(users), list(items), list(times), rating=rating)


def _per_user(inter: Interactions, indptr: np.ndarray, items: np.ndarray) -> dict:
    """CSR -> {original user id: [original item ids]} for readable comparisons."""
    return {
        inter.user_ids[u]: [inter.item_ids[i] for i in items[indptr[u] : indptr[u + 1]]]
        for u in range(inter.n_users)
    }


def test_from_arrays_assigns_contiguous_ids_in_ascending_original_order() -> None:
    inter = Interactions.from_arrays([30, 10, 30], ["b", "a", "c"], [1, 2, 3])
    assert inter.user_ids.tolist() == [10, 30]
    assert inter.item_ids.tolist() == ["a", "b", "c"]
    assert inter.user.tolist() == [1, 0, 1]
    assert inter.item.tolist() == [1, 0, 2]
    assert (inter.n_users, inter.n_items, len(inter)) == (2, 3, 3)
    assert inter.user_ids[inter.user].tolist() == [30, 10, 30]


def test_from_arrays_without_timestamp_uses_row_order() -> None:
    inter = Interactions.from_arrays([1, 1, 1], [7, 5, 6])
    _, items = inter.sequences()
    assert inter.item_ids[items].tolist() == [7, 5, 6]


def test_sequences_sort_by_time_and_keep_row_order_on_ties() -> None:
    inter = _table([(1, "x", 5), (2, "y", 1), (1, "y", 3), (1, "z", 3), (2, "x", 0)])
    indptr, items = inter.sequences()
    assert indptr.tolist() == [0, 3, 5]
    assert _per_user(inter, indptr, items) == {1: ["y", "z", "x"], 2: ["x", "y"]}


def test_constructor_rejects_item_outside_catalogue() -> None:
    with pytest.raises(CrossentError, match=r"item\[1\] = 5 is outside \[0, 2\)"):
        Interactions(
            user=np.array([0, 0]),
            item=np.array([1, 5]),
            timestamp=np.array([0, 1]),
            rating=None,
            watch_time=None,
            user_ids=np.array([9]),
            item_ids=np.array([3, 4]),
        )


def test_constructor_rejects_mismatched_lengths() -> None:
    with pytest.raises(CrossentError, match=r"item has 1 rows, expected 2"):
        Interactions.from_arrays([1, 2], [3])


def test_constructor_rejects_non_finite_timestamp_and_rating() -> None:
    with pytest.raises(CrossentError, match=r"timestamp\[1\] = nan is not finite"):
        Interactions.from_arrays([1, 2], [3, 4], [0.0, np.nan])
    with pytest.raises(CrossentError, match=r"rating\[0\] = inf is not finite"):
        Interactions.from_arrays([1, 2], [3, 4], [0, 1], rating=[np.inf, 1.0])


def test_constructor_rejects_text_timestamps() -> None:
    with pytest.raises(CrossentError, match="timestamp must be numeric"):
        Interactions.from_arrays([1], [2], ["2020-01-01"])


def test_implicit_keeps_ratings_at_threshold_and_reindexes() -> None:
    inter = _table([(1, 10, 0), (1, 20, 1), (2, 20, 2), (3, 30, 3)], rating=[4.0, 3.5, 5.0, 1.0])
    watched = implicit(inter, min_rating=4.0)
    # hand count: rows 0 and 2 survive; user 3 and item 30 vanish
    assert watched.user_ids.tolist() == [1, 2]
    assert watched.item_ids.tolist() == [10, 20]
    assert watched.user_ids[watched.user].tolist() == [1, 2]
    assert watched.item_ids[watched.item].tolist() == [10, 20]
    assert watched.rating.tolist() == [4.0, 5.0]


def test_implicit_needs_a_rating_column() -> None:
    with pytest.raises(CrossentError, match="needs a rating column"):
        implicit(Interactions.from_arrays([1], [2]))
    inter = _table([(1, 2, 0)], rating=[5.0])
    with pytest.raises(CrossentError, match="min_rating = nan"):
        implicit(inter, min_rating=float("nan"))


def test_k_core_filters_iteratively() -> None:
    # A: 1,2  B: 1,2  C: 1,3. For k=2, item 3 (1 row) goes, which leaves C with one row, so C
    # goes too; items 1 and 2 then have 2 rows each and stay.
    inter = _table([("A", 1, 0), ("A", 2, 1), ("B", 1, 2), ("B", 2, 3), ("C", 1, 4), ("C", 3, 5)])
    core = k_core(inter, 2)
    assert core.user_ids.tolist() == ["A", "B"]
    assert core.item_ids.tolist() == [1, 2]
    assert len(core) == 4


def test_k_core_with_separate_item_threshold() -> None:
    inter = _table([("A", 1, 0), ("A", 2, 1), ("B", 1, 2), ("C", 1, 3), ("C", 2, 4)])
    # users need 1 row, items 3: only item 1 (3 rows) survives; all three users keep a row
    core = k_core(inter, 1, item_k=3)
    assert core.item_ids.tolist() == [1]
    assert core.user_ids.tolist() == ["A", "B", "C"]


def test_k_core_rejects_non_positive_k() -> None:
    inter = _table([("A", 1, 0)])
    with pytest.raises(CrossentError, match=r"k = 0 must be an integer >= 1"):
        k_core(inter, 0)
    with pytest.raises(CrossentError, match=r"item_k = 2.5 must be an integer >= 1"):
        k_core(inter, 1, item_k=2.5)  # type: ignore[arg-type]


def test_leave_last_out_on_a_hand_example() -> None:
    inter = _table(
        [
            ("u", "a", 3), ("u", "b", 1), ("u", "c", 2), ("u", "d", 9),  # u: b c a d
            ("v", "a", 1), ("v", "b", 2),  # v: only 2 events -> train only
            ("w", "c", 5), ("w", "a", 5), ("w", "b", 5),  # w: ties keep row order: c a b
        ]
    )  # fmt: skip
    split = leave_last_out(inter)
    item = {name: index for index, name in enumerate(inter.item_ids)}
    user = {name: index for index, name in enumerate(inter.user_ids)}
    assert split.valid_target[user["u"]] == item["a"]
    assert split.test_target[user["u"]] == item["d"]
    assert split.valid_target[user["v"]] == -1 and split.test_target[user["v"]] == -1
    assert split.valid_target[user["w"]] == item["a"]
    assert split.test_target[user["w"]] == item["b"]
    assert split.test_time[user["u"]] == 9 and split.valid_time[user["u"]] == 3
    indptr, items = split.watched("valid")
    assert _per_user(split.train, indptr, items) == {"u": ["b", "c"], "v": ["a", "b"], "w": ["c"]}
    indptr, items = split.watched("test")
    assert _per_user(split.train, indptr, items) == {
        "u": ["b", "c", "a"],
        "v": ["a", "b"],
        "w": ["c", "a"],
    }
    assert split.users("test").tolist() == [user["u"], user["w"]]
    assert (split.n_users, split.n_items) == (inter.n_users, inter.n_items)


def test_leave_last_out_holds_out_a_seeded_sample_and_trains_everyone_else_on_all() -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 9, size=40)  # some users have fewer than 3 events
    users = np.repeat(np.arange(40), counts)
    inter = Interactions.from_arrays(users, rng.integers(0, 30, size=len(users)))
    eligible = set(np.flatnonzero(counts >= 3).tolist())
    everyone = leave_last_out(inter)
    assert set(everyone.users("test").tolist()) == eligible
    for n in (len(eligible), len(eligible) + 5):  # no fewer eligible than asked: no sample
        same = leave_last_out(inter, max_users=n, seed=1)
        assert np.array_equal(same.test_target, everyone.test_target)
        assert np.array_equal(same.train.user, everyone.train.user)
    split = leave_last_out(inter, max_users=7, seed=1)
    sampled = split.users("test")
    assert len(sampled) == 7 and set(sampled.tolist()) <= eligible
    assert np.array_equal(split.valid_target >= 0, split.test_target >= 0)
    assert split.eligible_users() == everyone.eligible_users() == len(eligible)
    # the sampled users' targets are the full split's; everyone else trains on every event
    assert np.array_equal(split.test_target[sampled], everyone.test_target[sampled])
    assert np.array_equal(split.valid_target[sampled], everyone.valid_target[sampled])
    trained = np.bincount(split.train.user, minlength=40)
    assert np.array_equal(trained, counts - 2 * (split.test_target >= 0))
    assert len(split.train) == len(inter) - 14
    again = leave_last_out(inter, max_users=7, seed=1)
    assert np.array_equal(again.test_target, split.test_target)
    other = leave_last_out(inter, max_users=7, seed=2)
    assert not np.array_equal(other.users("test"), sampled)
    with pytest.raises(CrossentError, match="max_users = -1 must be an integer >= 0"):
        leave_last_out(inter, max_users=-1)


def test_split_rejects_unknown_stage_and_empty_table() -> None:
    split = leave_last_out(_table([("u", "a", 0)]))
    with pytest.raises(CrossentError, match=r'stage = \'train\' must be "valid" or "test"'):
        split.watched("train")  # type: ignore[arg-type]
    empty = Interactions.from_arrays(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    with pytest.raises(CrossentError, match="empty"):
        leave_last_out(empty)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),  # user
            st.integers(0, 7),  # item
            st.integers(0, 4),  # timestamp: few values, many ties
        ),
        min_size=1,
        max_size=40,
    )
)
def test_leave_last_out_never_lets_the_future_in(rows: list[tuple[int, int, int]]) -> None:
    inter = Interactions.from_arrays(*map(list, zip(*rows, strict=True)))
    split = leave_last_out(inter)
    for stage in ("valid", "test"):
        indptr, items = split.watched(stage)
        for u, original_user in enumerate(inter.user_ids):
            # independent reference: this user's events by (time, row number)
            events = sorted(
                (time, row, item)
                for row, (usr, item, time) in enumerate(rows)
                if usr == original_user
            )
            ordered = [item for _, _, item in events]
            got = [inter.item_ids[i] for i in items[indptr[u] : indptr[u + 1]]]
            target = split.target(stage)[u]
            if len(events) < 3:
                assert target == -1
                assert got == ordered
                continue
            position = len(events) - (2 if stage == "valid" else 1)
            assert inter.item_ids[target] == ordered[position]
            # the history is exactly the events before the target, in time order
            assert got == ordered[:position]
            assert all(time <= events[position][0] for time, _, _ in events[:position])


def test_csr_rows_gathers_rows_in_requested_order() -> None:
    indptr = np.array([0, 2, 2, 5])
    items = np.array([7, 8, 1, 2, 3])
    new_indptr, new_items = csr_rows(indptr, items, np.array([2, 1, 0, 2]))
    assert new_indptr.tolist() == [0, 3, 3, 5, 8]
    assert new_items.tolist() == [1, 2, 3, 7, 8, 1, 2, 3]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-(2**40), 2**40), max_size=30) | st.lists(st.integers(-3, 50), max_size=30)
)
def test_contiguous_ids_agree_with_numpy_unique(values: list[int]) -> None:
    raw = np.array(values, dtype=np.int64)
    index, original = contiguous_ids(raw)
    expected_original, expected_index = np.unique(raw, return_inverse=True)
    assert original.tolist() == expected_original.tolist()
    assert index.tolist() == expected_index.reshape(-1).tolist()
