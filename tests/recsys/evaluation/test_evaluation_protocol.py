"""Full-catalogue retrieval evaluation against an independent per-user formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions, Split, leave_last_out
from crossent.recsys.evaluation.protocol import evaluate_retrieval, retrieval_metrics


class FixedScores:
    """A scorer with a fixed (n_users, n_items) score table; records the batch sizes it saw."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table
        self.batch_sizes: list[int] = []

    def score(self, users: np.ndarray, watched: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        self.batch_sizes.append(len(users))
        return self.table[users]


def _split(seed: int, n_users: int = 12, n_items: int = 15, n: int = 90) -> Split:
    rng = np.random.default_rng(seed)
    # every user and item appears, so the id space is exactly n_users x n_items
    users = np.concatenate([np.arange(n_users), rng.integers(0, n_users, n)])
    items = np.concatenate([np.arange(n_items), rng.integers(0, n_items, n_users + n - n_items)])
    rng.shuffle(items)
    return leave_last_out(
        Interactions.from_arrays(users, items[: len(users)], rng.permutation(len(users)))
    )


def _reference_ranks(split: Split, stage: str, table: np.ndarray) -> tuple[list, list]:
    """Per user, by the definition: candidates = all items not in the allowed history."""
    indptr, items = split.watched(stage)  # type: ignore[arg-type]
    target = split.target(stage)  # type: ignore[arg-type]
    users, ranks = [], []
    for u in range(split.n_users):
        if target[u] < 0:
            continue
        seen = set(items[indptr[u] : indptr[u + 1]].tolist())
        if target[u] in seen:
            rank = np.inf  # a re-watched target is unreachable: a miss, reciprocal rank 0
        else:
            others = [j for j in range(split.n_items) if j not in seen and j != target[u]]
            rank = sum(table[u, j] >= table[u, target[u]] for j in others)  # ties count against
        users.append(u)
        ranks.append(rank)
    return users, ranks


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("stage", ["valid", "test"])
def test_metrics_match_the_per_user_definition(seed: int, stage: str) -> None:
    split = _split(seed)
    table = np.random.default_rng(seed + 10).integers(0, 6, (split.n_users, split.n_items))
    scorer = FixedScores(table.astype(np.float64))  # small integer scores: many ties
    result = evaluate_retrieval(scorer, split, stage, ks=(1, 3, 5), progress=False)  # type: ignore[arg-type]
    users, ranks = _reference_ranks(split, stage, table)
    rank = np.array(ranks, dtype=float)
    assert result["users"] == len(users)
    for k in (1, 3, 5):
        assert result[f"HR@{k}"] == pytest.approx(np.mean(rank < k))
        assert result[f"Recall@{k}"] == pytest.approx(np.mean(rank < k))
        assert result[f"NDCG@{k}"] == pytest.approx(
            np.mean([1 / np.log2(r + 2) if r < k else 0.0 for r in ranks])
        )
    assert result["MRR"] == pytest.approx(np.mean(1.0 / (rank + 1)))


def test_ndcg_agrees_with_scikit_learn_without_ties() -> None:
    split = _split(5)
    table = np.random.default_rng(7).standard_normal((split.n_users, split.n_items))
    result = evaluate_retrieval(FixedScores(table), split, ks=(4,), progress=False)
    indptr, items = split.watched("test")
    per_user = []
    for u in split.users("test"):
        seen = set(items[indptr[u] : indptr[u + 1]].tolist())
        if split.test_target[u] in seen:
            per_user.append(0.0)
            continue
        keep = [j for j in range(split.n_items) if j not in seen]
        relevance = (np.array(keep) == split.test_target[u]).astype(float)[None, :]
        per_user.append(ndcg_score(relevance, table[u, keep][None, :], k=4))
    assert result["NDCG@4"] == pytest.approx(np.mean(per_user))


def test_results_do_not_depend_on_batch_size() -> None:
    split = _split(3, n_users=30)
    table = np.random.default_rng(3).integers(0, 4, (split.n_users, split.n_items)) * 1.0
    results = [
        evaluate_retrieval(FixedScores(table), split, batch_size=size, progress=False)
        for size in (1, 4, 7, None)
    ]
    for result in results[1:]:
        assert result == results[0]


def test_default_batches_keep_a_million_item_catalogue_bounded() -> None:
    n_items = 1_000_000
    # 20 users, each with 3 events on distinct items; the rest of the catalogue is never seen
    users = np.repeat(np.arange(20), 3)
    items = np.arange(60) * 16_000
    inter = Interactions(
        user=users,
        item=items,
        timestamp=np.tile(np.arange(3), 20),
        rating=None,
        watch_time=None,
        user_ids=np.arange(20),
        item_ids=np.arange(n_items),
    )
    split = leave_last_out(inter)

    class TargetFirst:
        def __init__(self) -> None:
            self.batch_sizes: list[int] = []

        def score(self, users: np.ndarray, history: tuple) -> np.ndarray:
            self.batch_sizes.append(len(users))
            scores = np.zeros((len(users), n_items), dtype=np.float32)
            scores[np.arange(len(users)), split.test_target[users]] = 1.0
            return scores

    scorer = TargetFirst()
    result = evaluate_retrieval(scorer, split, ks=(1,), progress=False)
    assert max(scorer.batch_sizes) == 4  # 2**22 cells // 10**6 items
    assert result["HR@1"] == 1.0 and result["MRR"] == 1.0


def test_already_watched_items_are_excluded_and_rewatched_targets_miss() -> None:
    # user 0 watches a, b, then b again (test target b is a re-watch); user 1 watches c, a, b
    inter = Interactions.from_arrays(
        [0, 0, 0, 1, 1, 1], ["a", "b", "b", "c", "a", "b"], [0, 1, 2, 0, 1, 2]
    )
    split = leave_last_out(inter)
    # scores (a, b, c): a > c > b for both users. Test histories: user 0 [a, b] (target b is
    # a re-watch: a miss); user 1 [c, a], leaving b the only candidate: rank 0
    table = np.array([[3.0, 1.0, 2.0], [3.0, 2.0, 2.5]])
    _, per_user = retrieval_metrics(FixedScores(table), split, ks=(1,), progress=False)
    assert per_user["HR@1"].tolist() == [0.0, 1.0]
    assert per_user["MRR"].tolist() == [0.0, 1.0]
    without_exclusion = evaluate_retrieval(
        FixedScores(table), split, ks=(1, 3), exclude_seen=False, progress=False
    )
    # no exclusion: both users rank b 3rd (a and c score higher)
    assert without_exclusion["HR@1"] == 0.0 and without_exclusion["HR@3"] == 1.0
    assert without_exclusion["MRR"] == pytest.approx(1 / 3)


def test_constant_scorer_gets_no_credit_for_ties() -> None:
    split = _split(8, n_items=40)
    table = np.ones((split.n_users, split.n_items))
    result = evaluate_retrieval(FixedScores(table), split, ks=(1,), progress=False)
    assert result["HR@1"] == 0.0


def test_torch_tensor_scores_are_accepted() -> None:
    split = _split(9)
    table = np.random.default_rng(9).standard_normal((split.n_users, split.n_items))

    class TorchScorer:
        def score(self, users: np.ndarray, history: tuple) -> torch.Tensor:
            return torch.tensor(table[users], requires_grad=True)

    numpy_result = evaluate_retrieval(FixedScores(table), split, progress=False)
    assert evaluate_retrieval(TorchScorer(), split, progress=False) == numpy_result


def test_scorer_and_argument_errors_name_the_problem() -> None:
    split = _split(11)
    good = FixedScores(np.zeros((split.n_users, split.n_items)))
    wrong = FixedScores(np.zeros((split.n_users, split.n_items + 1)))
    with pytest.raises(CrossentError, match=r"returned shape \(\d+, 16\), expected \(\d+, 15\)"):
        evaluate_retrieval(wrong, split, progress=False)
    table = np.zeros((split.n_users, split.n_items))
    user = int(split.users("test")[0])
    table[user, 4] = np.nan
    with pytest.raises(CrossentError, match=rf"gave user {user} item 4 the non-finite score nan"):
        evaluate_retrieval(FixedScores(table), split, progress=False)
    with pytest.raises(CrossentError, match=r"ks\[1\] = 0 must be an integer >= 1"):
        evaluate_retrieval(good, split, ks=(5, 0), progress=False)
    with pytest.raises(CrossentError, match=r"batch_size = 0 must be an integer >= 1"):
        evaluate_retrieval(good, split, batch_size=0, progress=False)
    with pytest.raises(CrossentError, match=r"users\[0\] = 99 is outside \[0, 12\)"):
        evaluate_retrieval(good, split, users=np.array([99]), progress=False)
    with pytest.raises(CrossentError, match=r'stage = \'train\' must be "valid" or "test"'):
        evaluate_retrieval(good, split, "train", progress=False)  # type: ignore[arg-type]


def test_users_without_a_target_are_refused() -> None:
    split = leave_last_out(Interactions.from_arrays([0, 0, 1, 1, 1], [0, 1, 0, 1, 2]))
    good = FixedScores(np.zeros((2, 3)))
    with pytest.raises(CrossentError, match=r"users\[0\] = 0 has no test target"):
        evaluate_retrieval(good, split, users=np.array([0]), progress=False)
    only_short = leave_last_out(Interactions.from_arrays([0, 0], [0, 1]))
    with pytest.raises(CrossentError, match="no user has a test target"):
        evaluate_retrieval(FixedScores(np.zeros((1, 2))), only_short, progress=False)
