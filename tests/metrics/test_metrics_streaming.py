"""Streaming accumulators: merging halves equals scoring the whole; equal to the functions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from crossent.errors import CrossentError
from crossent.metrics import (
    brier_score,
    expected_calibration_error,
    log_loss,
    normalized_entropy,
    ranking_metrics,
    reliability_curve,
)
from crossent.metrics import streaming as s


def _binary(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.uniform(size=n)
    target = (rng.uniform(size=n) < probs).astype(int)
    target[:2] = [0, 1]
    return probs, target, rng.uniform(0.1, 2, size=n)


def _fed(make, data, split):  # type: ignore[no-untyped-def]
    """Two accumulators fed the halves ``[:split]`` and ``[split:]``, merged; and a whole one."""
    first, second, whole = make(), make(), make()
    first.update(*(column[:split] for column in data))
    second.update(*(column[split:] for column in data))
    whole.update(*data)
    return first.merge(second), whole


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 300), cut=st.floats(0, 1))
def test_merging_two_halves_equals_scoring_the_whole(seed: int, n: int, cut: float) -> None:
    probs, target, weight = _binary(seed, n)
    split = int(cut * n)
    data = (probs, target, weight)
    for make in (
        lambda: s.LogLoss(base="bits"),
        s.NormalizedEntropy,
        s.Perplexity,
        s.BrierScore,
        lambda: s.Calibration(bins=7),
        lambda: s.Calibration(bins=5, strategy="quantile"),
        s.RocAuc,
    ):
        merged, whole = _fed(make, data, split)
        assert merged.result() == pytest.approx(whole.result(), rel=1e-12, abs=1e-15)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.floats(0, 1))
def test_ranking_accumulator_merge_equals_whole(seed: int, cut: float) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=(12, 9)).astype(float)
    target = rng.integers(0, 9, size=12)
    split = int(cut * 12)
    first, second = s.RankingMetrics(ks=(1, 5)), s.RankingMetrics(ks=(1, 5))
    first.update(scores[:split], target[:split])
    second.update(scores[split:], target[split:])
    merged = first.merge(second).result()
    whole = ranking_metrics(scores, target, ks=(1, 5))
    assert merged.keys() == whole.keys()
    for name in whole:
        assert merged[name] == pytest.approx(whole[name], rel=1e-12)


def test_batched_accumulators_equal_functional_forms() -> None:
    probs, target, weight = _binary(0, 1000)
    loss, ne, brier, calibration = (
        s.LogLoss(),
        s.NormalizedEntropy(),
        s.BrierScore(),
        s.Calibration(bins=10),
    )
    for start in range(0, 1000, 128):
        batch = (
            probs[start : start + 128],
            target[start : start + 128],
            weight[start : start + 128],
        )
        for accumulator in (loss, ne, brier, calibration):
            accumulator.update(*batch)
    assert abs(loss.result() - sk_log_loss(target, probs, sample_weight=weight)) < 1e-9
    assert ne.result() == pytest.approx(normalized_entropy(probs, target, sample_weight=weight))
    assert brier.result() == pytest.approx(brier_score(probs, target, sample_weight=weight))
    assert calibration.result() == pytest.approx(
        expected_calibration_error(probs, target, bins=10, sample_weight=weight)
    )
    assert calibration.ratio() == pytest.approx(np.dot(weight, probs) / np.dot(weight, target))


def test_multiclass_log_loss_accumulator_from_logits() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(300, 4))
    target = rng.integers(0, 4, size=300)
    accumulator = s.LogLoss(input_kind="logits")
    accumulator.update(logits[:100], target[:100])
    accumulator.update(logits[100:], target[100:])
    assert accumulator.result() == pytest.approx(
        log_loss(logits, target, input_kind="logits"), rel=1e-12
    )


def test_histogram_auc_is_within_its_reported_error_of_sklearn() -> None:
    rng = np.random.default_rng(2)
    probs = rng.beta(0.5, 8, size=200_000)  # mass near 0, like click-through rates
    target = (rng.uniform(size=200_000) < probs).astype(int)
    accumulator = s.RocAuc()
    accumulator.update(probs, target)
    exact = roc_auc_score(target, probs)
    assert accumulator.max_error() < 1e-4
    assert abs(accumulator.result() - exact) <= accumulator.max_error()


def measure_quantile_calibration(seed: int) -> dict[str, float]:
    """Streaming quantile ECE (edges on a fine grid) against the exact quantile ECE."""
    probs, target, _ = _binary(seed, 5000)
    accumulator = s.Calibration(bins=8, strategy="quantile")
    accumulator.update(probs, target)
    edges = accumulator.curve().edges
    for j, edge in enumerate(edges[1:-1], start=1):
        # edge is the first fine-grid point where the cumulative share reaches j / 8
        assert np.mean(probs <= edge) >= j / 8
        assert np.mean(probs <= edge - 1 / s.FINE_BINS) < j / 8
    exact = reliability_curve(probs, target, bins=8, strategy="quantile")
    return {"|streaming - exact ECE|": abs(accumulator.result() - exact.expected_calibration_error)}


@pytest.mark.statistical
def test_quantile_calibration_edges_cut_the_weight_within_one_fine_bin() -> None:
    # 20 seeds: 1e-4 +- 1e-4, at most 3e-4 (docs/TESTING.md)
    assert measure_quantile_calibration(3)["|streaming - exact ECE|"] < 1e-3


def test_merging_different_settings_is_an_error() -> None:
    with pytest.raises(CrossentError, match="different bins"):
        s.Calibration(bins=5).merge(s.Calibration(bins=6))


def test_empty_accumulator_result_is_an_error() -> None:
    with pytest.raises(CrossentError, match="no rows"):
        s.LogLoss().result()


def test_entropy_and_single_ranking_accumulators_equal_functions() -> None:
    from crossent.metrics import entropy, hit_rate_at_k, mrr, ndcg_at_k, recall_at_k

    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(5), size=60)
    first, second = s.Entropy(base="bits"), s.Entropy(base="bits")
    first.update(probs[:25])
    second.update(probs[25:])
    assert first.merge(second).result() == pytest.approx(entropy(probs, base="bits"), rel=1e-12)

    scores = rng.normal(size=(30, 40))
    target = rng.integers(0, 40, size=30)
    for accumulator, function in (
        (s.HitRateAtK(5), lambda: hit_rate_at_k(scores, target, 5)),
        (s.RecallAtK(5), lambda: recall_at_k(scores, target, 5)),
        (s.NdcgAtK(5), lambda: ndcg_at_k(scores, target, 5)),
        (s.Mrr(), lambda: mrr(scores, target)),
    ):
        for start in range(0, 30, 7):
            accumulator.update(scores[start : start + 7], target[start : start + 7])
        assert accumulator.result() == pytest.approx(function(), rel=1e-12)


def test_streaming_module_keeps_every_public_name() -> None:
    for name in (
        "BrierScore", "Calibration", "Entropy", "HitRateAtK", "LogLoss", "Mrr", "NdcgAtK",
        "NormalizedEntropy", "Perplexity", "RankingMetrics", "RecallAtK", "RocAuc",
    ):
        assert name in s.__all__
        assert isinstance(getattr(s, name), type)
    # the documented grid sizes (module docstrings)
    assert (s.FINE_BINS, s.AUC_BINS, s.AUC_LOGIT_RANGE) == (16_384, 65_536, 28.0)


@pytest.mark.parametrize("make", [s.LogLoss, s.NormalizedEntropy, s.Calibration])
def test_a_batch_with_another_number_of_classes_is_an_error(make) -> None:  # type: ignore[no-untyped-def]
    accumulator = make()
    accumulator.update(np.array([0.2, 0.7]), np.array([0, 1]))
    three_classes = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    with pytest.raises(CrossentError, match="batch has 3 classes but earlier batches had 2"):
        accumulator.update(three_classes, np.array([2, 0]))


def test_merging_a_different_number_of_classes_is_an_error() -> None:
    binary, three = s.Calibration(), s.Calibration()
    binary.update(np.array([0.2, 0.7]), np.array([0, 1]))
    three.update(np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]), np.array([2, 0]))
    with pytest.raises(CrossentError, match="different numbers of classes"):
        binary.merge(three)


def test_unvalidated_update_scores_valid_input_like_the_checked_one() -> None:
    probs, target, weight = _binary(6, 400)
    for make in (s.LogLoss, s.BrierScore, lambda: s.Calibration(bins=6), s.RocAuc):
        checked, trusted = make(), make()
        checked.update(probs, target, weight)
        trusted.update(probs, target, weight, validate=False)
        assert trusted.result() == checked.result()
    loss = s.LogLoss()
    loss.update(probs, target, weight, validate=False)
    assert loss.result() == pytest.approx(sk_log_loss(target, probs, sample_weight=weight))


def test_multiclass_calibration_ratio_streams_like_the_definition() -> None:
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.ones(3), size=300)
    target = rng.integers(0, 3, size=300)
    weight = rng.uniform(0.1, 2, size=300)
    accumulator = s.Calibration()
    accumulator.update(probs[:120], target[:120], weight[:120])
    accumulator.update(probs[120:], target[120:], weight[120:])
    expected = weight @ probs / np.array([weight[target == c].sum() for c in range(3)])
    np.testing.assert_allclose(accumulator.ratio(), expected, rtol=1e-12)
