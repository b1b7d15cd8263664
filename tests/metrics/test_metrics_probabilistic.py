"""Probabilistic metrics against scikit-learn and formulas written from the definitions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from crossent.errors import CrossentError
from crossent.metrics import (
    brier_score,
    entropy,
    log_loss,
    normalized_entropy,
    perplexity,
    probs_from_logits,
)


def _random_multiclass(rng: np.random.Generator, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(scale=2.0, size=(n, c))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    target = rng.integers(0, c, size=n)
    target[:c] = np.arange(c)  # every class present, as sklearn infers the classes from target
    return probs, target


@pytest.mark.parametrize("seed", range(5))
def test_binary_log_loss_equals_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.uniform(size=500)
    probs[:3] = [0.0, 1.0, 1e-20]  # clipped at machine epsilon, like sklearn
    target = rng.integers(0, 2, size=500)
    weight = rng.uniform(0, 3, size=500)
    expected = sk_log_loss(target, probs, sample_weight=weight)
    assert abs(log_loss(probs, target, sample_weight=weight) - expected) < 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_log_loss_equals_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs, target = _random_multiclass(rng, 400, 5)
    weight = rng.uniform(0, 2, size=400)
    expected = sk_log_loss(target, probs, sample_weight=weight, labels=range(5))
    assert abs(log_loss(probs, target, sample_weight=weight) - expected) < 1e-9


def test_log_loss_with_string_labels_follows_column_order() -> None:
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    target = np.array(["spam", "ham", "spam"])
    # columns are (ham, spam): sklearn's sorted-label convention, stated explicitly here
    expected = sk_log_loss(target, probs)
    assert abs(log_loss(probs, target, labels=["ham", "spam"]) - expected) < 1e-12
    # reversed column order gives the loss of the swapped probabilities
    swapped = sk_log_loss(target, probs[:, ::-1])
    assert abs(log_loss(probs, target, labels=["spam", "ham"]) - swapped) < 1e-12


def test_log_loss_in_bits_is_nats_over_ln2() -> None:
    probs, target = np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0])
    nats = -(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3
    assert log_loss(probs, target, base="bits") == pytest.approx(nats / math.log(2), rel=1e-12)
    assert log_loss(probs, target, base=10) == pytest.approx(nats / math.log(10), rel=1e-12)


def test_log_loss_from_logits_equals_log_loss_of_softmax() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=3, size=(200, 4))
    target = rng.integers(0, 4, size=200)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert log_loss(logits, target, input_kind="logits") == pytest.approx(
        sk_log_loss(target, probs, labels=range(4)), rel=1e-10
    )
    binary_logits = rng.normal(scale=3, size=200)
    binary_target = rng.integers(0, 2, size=200)
    sigmoid = 1 / (1 + np.exp(-binary_logits))
    assert log_loss(binary_logits, binary_target, input_kind="logits") == pytest.approx(
        sk_log_loss(binary_target, sigmoid), rel=1e-10
    )


def test_huge_logits_stay_finite() -> None:
    value = log_loss(np.array([1000.0, -1000.0]), np.array([0, 1]), input_kind="logits")
    assert value == pytest.approx(1000.0)
    assert np.allclose(probs_from_logits(np.array([800.0, -800.0])), [1.0, 0.0])


def test_reductions_sum_and_none_are_weighted() -> None:
    probs, target, weight = np.array([0.9, 0.2]), np.array([1, 1]), np.array([2.0, 0.5])
    per_row = -np.log(probs)
    assert np.allclose(
        log_loss(probs, target, sample_weight=weight, reduction="none"), per_row * weight
    )
    assert log_loss(probs, target, sample_weight=weight, reduction="sum") == pytest.approx(
        float(per_row @ weight)
    )


def test_rows_not_summing_to_one_warn_like_sklearn() -> None:
    with pytest.warns(UserWarning, match="row 1 sums to 1.3"):
        log_loss(np.array([[0.5, 0.5], [0.6, 0.7]]), np.array([0, 1]))


def test_normalized_entropy_divides_by_base_rate_entropy() -> None:
    rng = np.random.default_rng(4)
    probs = rng.uniform(0.01, 0.99, size=300)
    target = (rng.uniform(size=300) < 0.3).astype(int)
    base_rate = target.mean()
    prior = -(base_rate * np.log(base_rate) + (1 - base_rate) * np.log(1 - base_rate))
    expected = sk_log_loss(target, probs) / prior
    assert normalized_entropy(probs, target) == pytest.approx(expected, rel=1e-12)


def test_normalized_entropy_multiclass_uses_class_prior() -> None:
    rng = np.random.default_rng(5)
    probs, target = _random_multiclass(rng, 300, 4)
    prior = np.bincount(target, minlength=4) / 300
    expected = sk_log_loss(target, probs, labels=range(4)) / -(prior * np.log(prior)).sum()
    assert normalized_entropy(probs, target) == pytest.approx(expected, rel=1e-12)


def test_predicting_the_base_rate_has_normalized_entropy_one() -> None:
    target = np.array([1, 0, 0, 0])
    assert normalized_entropy(np.full(4, 0.25), target) == pytest.approx(1.0)


def test_normalized_entropy_of_a_single_class_is_an_error() -> None:
    with pytest.raises(CrossentError, match="single class"):
        normalized_entropy(np.array([0.2, 0.3]), np.array([1, 1]))


def test_perplexity_of_uniform_predictions_is_number_of_classes() -> None:
    assert perplexity(np.full((3, 7), 1 / 7), np.array([0, 3, 6])) == pytest.approx(7.0)


def test_entropy_matches_definition() -> None:
    rng = np.random.default_rng(6)
    probs, _ = _random_multiclass(rng, 50, 6)
    expected = -(probs * np.log(probs)).sum(axis=1).mean()
    assert entropy(probs) == pytest.approx(expected, rel=1e-12)
    assert entropy(np.array([0.0, 1.0, 0.5]), base="bits") == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", range(3))
def test_brier_equals_sklearn_binary_and_multiclass(seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.uniform(size=300)
    target = rng.integers(0, 2, size=300)
    weight = rng.uniform(size=300)
    assert (
        abs(
            brier_score(probs, target, sample_weight=weight)
            - brier_score_loss(target, probs, sample_weight=weight)
        )
        < 1e-9
    )
    multi, multi_target = _random_multiclass(rng, 300, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = brier_score_loss(multi_target, multi, labels=range(4))
    assert abs(brier_score(multi, multi_target) - expected) < 1e-9


def test_probability_outside_unit_interval_names_position() -> None:
    with pytest.raises(CrossentError, match=r"probs\[2\] = 1.5 is outside \[0, 1\]"):
        log_loss(np.array([0.1, 0.2, 1.5]), np.array([0, 1, 1]))


def test_nan_prediction_names_row() -> None:
    with pytest.raises(CrossentError, match=r"probs row 1 is not finite: probs\[1, 0\] = nan"):
        log_loss(np.array([[0.5, 0.5], [np.nan, 0.5]]), np.array([0, 1]))


def test_label_outside_classes_names_row() -> None:
    with pytest.raises(CrossentError, match=r"target\[1\] = 3 is outside \[0, 3\)"):
        log_loss(np.full((2, 3), 1 / 3), np.array([0, 3]))
    with pytest.raises(CrossentError, match=r"target\[0\] = 'eggs' is not in labels"):
        log_loss(np.array([0.5]), np.array(["eggs"]), labels=["ham", "spam"])


def test_length_mismatch_and_negative_weight_are_errors() -> None:
    with pytest.raises(CrossentError, match="target has 3 rows but probs has 2"):
        log_loss(np.array([0.1, 0.2]), np.array([0, 1, 1]))
    with pytest.raises(CrossentError, match=r"sample_weight\[1\] = -1 is negative"):
        log_loss(np.array([0.1, 0.2]), np.array([0, 1]), sample_weight=[1.0, -1.0])


def test_unknown_base_is_an_error() -> None:
    with pytest.raises(CrossentError, match="base"):
        log_loss(np.array([0.1]), np.array([0]), base="decibels")
