"""ROC AUC against scikit-learn; top-k metrics against a brute-force sort written from the
definitions (pessimistic ties: among equal scores, non-relevant items rank first)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from sklearn.metrics import roc_auc_score

from crossent.errors import CrossentError
from crossent.metrics import (
    hit_rate_at_k,
    mrr,
    ndcg_at_k,
    ranking_metrics,
    recall_at_k,
    roc_auc,
)


def _brute_force(scores, relevant, excluded, ks):  # type: ignore[no-untyped-def]
    out: dict[str, list[float]] = {f"{m}@{k}": [] for k in ks for m in ("hit", "recall", "ndcg")}
    out["mrr"] = []
    for row_scores, row_relevant, row_excluded in zip(scores, relevant, excluded, strict=True):
        items = [j for j in range(len(row_scores)) if not row_excluded[j]]
        items.sort(key=lambda j: (-row_scores[j], bool(row_relevant[j])))
        ranked = [bool(row_relevant[j]) for j in items]
        n_relevant = sum(ranked)
        for k in ks:
            top = ranked[:k]
            out[f"hit@{k}"].append(float(any(top)))
            out[f"recall@{k}"].append(sum(top) / n_relevant)
            dcg = sum(1 / np.log2(r + 2) for r, rel in enumerate(top) if rel)
            ideal = sum(1 / np.log2(r + 2) for r in range(min(k, n_relevant)))
            out[f"ndcg@{k}"].append(dcg / ideal)
        out["mrr"].append(1 / (ranked.index(True) + 1))
    return {name: np.array(values) for name, values in out.items()}


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_users, n_items = int(rng.integers(1, 7)), int(rng.integers(1, 15))
    scores = rng.integers(0, 4, size=(n_users, n_items)).astype(float)  # many ties
    excluded = rng.uniform(size=(n_users, n_items)) < 0.3
    relevant = (rng.uniform(size=(n_users, n_items)) < 0.3) & ~excluded
    for row in range(n_users):
        if not relevant[row].any():
            item = rng.integers(n_items)
            relevant[row, item], excluded[row, item] = True, False
    return scores, relevant, excluded


def test_relevance_matrix_metrics_equal_brute_force_sort() -> None:
    rng = np.random.default_rng(0)
    ks = [1, 2, 5, 30]
    for _ in range(150):
        scores, relevant, excluded = _random_case(rng)
        ours = ranking_metrics(scores, relevant, ks=ks, exclude=excluded, reduction="none")
        reference = _brute_force(scores, relevant, excluded, ks)
        for name, values in reference.items():
            assert np.allclose(ours[name], values), name


def test_single_target_equals_one_hot_relevance() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        scores, _, excluded = _random_case(rng)
        n_users, n_items = scores.shape
        target = np.array([rng.choice(np.flatnonzero(~excluded[i])) for i in range(n_users)])
        one_hot = np.zeros((n_users, n_items), dtype=bool)
        one_hot[np.arange(n_users), target] = True
        ours = ranking_metrics(scores, target, ks=[1, 3, 10], exclude=excluded, reduction="none")
        reference = _brute_force(scores, one_hot, excluded, [1, 3, 10])
        for name, values in reference.items():
            assert np.allclose(ours[name], values), name


def test_exclude_accepts_sparse_matrix_and_index_lists() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(20, 30))
    target = rng.integers(0, 30, size=20)
    history = [np.setdiff1d(rng.choice(30, size=5, replace=False), [t]) for t in target]
    mask = np.zeros((20, 30), dtype=bool)
    for row, items in enumerate(history):
        mask[row, items] = True
    by_mask = ranking_metrics(scores, target, ks=[5], exclude=mask)
    assert ranking_metrics(scores, target, ks=[5], exclude=scipy.sparse.csr_matrix(mask)) == by_mask
    assert ranking_metrics(scores, target, ks=[5], exclude=history) == by_mask


def test_constant_scores_get_no_credit_for_ties() -> None:
    scores = np.zeros((2, 5))
    assert hit_rate_at_k(scores, np.array([0, 4]), k=4) == 0.0
    assert mrr(scores, np.array([0, 4])) == pytest.approx(1 / 5)


def test_single_functions_agree_with_hand_values() -> None:
    scores = np.array([[0.9, 0.1, 0.5, 0.3]])
    relevant = np.array([[False, True, True, False]])
    # ranking: item0, item2 (rel), item3, item1 (rel)
    assert hit_rate_at_k(scores, relevant, k=1) == 0.0
    assert recall_at_k(scores, relevant, k=2) == 0.5
    expected_ndcg = (1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3))
    assert ndcg_at_k(scores, relevant, k=4) == pytest.approx(expected_ndcg)
    assert mrr(scores, relevant) == 0.5
    assert mrr(scores, relevant, k=1) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_sklearn_with_ties_and_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 2, size=400)
    scores = rng.integers(0, 20, size=400) / 19  # heavy ties
    weight = rng.uniform(size=400)
    expected = roc_auc_score(target, scores, sample_weight=weight)
    assert abs(roc_auc(scores, target, sample_weight=weight) - expected) < 1e-9
    continuous = rng.normal(size=400)
    assert abs(roc_auc(continuous, target) - roc_auc_score(target, continuous)) < 1e-9


def test_roc_auc_with_one_class_is_an_error() -> None:
    with pytest.raises(CrossentError, match="no positive rows"):
        roc_auc(np.array([0.1, 0.2]), np.array([0, 0]))


def test_excluded_target_is_an_error() -> None:
    with pytest.raises(CrossentError, match=r"target\[1\] = 2 is also excluded"):
        hit_rate_at_k(np.zeros((2, 3)), np.array([0, 2]), exclude=[[1], [2]])


def test_row_without_relevant_item_is_an_error() -> None:
    with pytest.raises(CrossentError, match="target row 1 has no relevant item"):
        ndcg_at_k(np.zeros((2, 3)), np.array([[True, False, False], [False, False, False]]))


def test_bad_ranking_inputs_are_errors() -> None:
    with pytest.raises(CrossentError, match=r"target\[0\] = 7 is outside \[0, 3\)"):
        recall_at_k(np.zeros((1, 3)), np.array([7]))
    with pytest.raises(CrossentError, match=r"scores row 0 is not finite: scores\[0, 1\] = nan"):
        recall_at_k(np.array([[0.0, np.nan]]), np.array([0]))
    with pytest.raises(CrossentError, match="k = 0 must be an integer >= 1"):
        recall_at_k(np.zeros((1, 3)), np.array([0]), k=0)
    with pytest.raises(CrossentError, match="exclude row 0 holds item 9"):
        recall_at_k(np.zeros((1, 3)), np.array([0]), exclude=[[9]])


def test_float32_scores_rank_like_float64() -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, size=(8, 20)).astype(np.float32)
    target = rng.integers(0, 20, size=8)
    single = ranking_metrics(scores, target, ks=[3, 10])
    assert single == ranking_metrics(scores.astype(np.float64), target, ks=[3, 10])


def test_mrr_rejects_an_unknown_reduction() -> None:
    scores = np.array([[0.9, 0.1, 0.5]])
    with pytest.raises(CrossentError, match="reduction = 'avg' is not one of"):
        mrr(scores, np.array([2]), reduction="avg")  # type: ignore[arg-type]


def test_single_functions_reduce_the_brute_force_rows() -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 4, size=(20, 15)).astype(float)  # many ties
    relevant = rng.uniform(size=(20, 15)) < 0.3
    relevant[:, 0] = True  # every row has a relevant item
    no_exclusion = np.zeros_like(relevant)
    per_row = _brute_force(scores, relevant, no_exclusion, [4])
    for reduction, reduce in (("none", lambda v: v), ("sum", np.sum), ("mean", np.mean)):
        for name, function in (
            ("hit@4", hit_rate_at_k),
            ("recall@4", recall_at_k),
            ("ndcg@4", ndcg_at_k),
        ):
            ours = function(scores, relevant, 4, reduction=reduction)
            np.testing.assert_allclose(ours, reduce(per_row[name]), rtol=1e-12)
        np.testing.assert_allclose(
            mrr(scores, relevant, reduction=reduction), reduce(per_row["mrr"]), rtol=1e-12
        )
