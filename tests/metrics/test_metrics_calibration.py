"""Calibration metrics against scikit-learn's calibration_curve and the ECE definition."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from crossent.errors import CrossentError
from crossent.metrics import calibration_ratio, expected_calibration_error, reliability_curve


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_equals_sklearn_on_filled_bins(strategy: str) -> None:
    rng = np.random.default_rng(0)
    probs = rng.beta(2, 5, size=2000)
    target = (rng.uniform(size=2000) < probs).astype(int)
    curve = reliability_curve(probs, target, bins=12, strategy=strategy)  # type: ignore[arg-type]
    observed, predicted = calibration_curve(target, probs, n_bins=12, strategy=strategy)
    filled = curve.weight > 0
    assert np.allclose(curve.observed[filled], observed, atol=1e-12)
    assert np.allclose(curve.mean_predicted[filled], predicted, atol=1e-12)
    assert curve.weight.sum() == 2000


def test_ece_matches_definition_with_weights() -> None:
    rng = np.random.default_rng(1)
    probs = rng.uniform(size=1000)
    target = rng.integers(0, 2, size=1000)
    weight = rng.uniform(size=1000)
    bins = np.minimum((probs * 10).astype(int), 9)  # no probability sits exactly on an edge here
    expected = 0.0
    for b in range(10):
        inside = bins == b
        w = weight[inside]
        gap = abs(np.average(probs[inside], weights=w) - np.average(target[inside], weights=w))
        expected += w.sum() / weight.sum() * gap
    value = expected_calibration_error(probs, target, bins=10, sample_weight=weight)
    assert value == pytest.approx(expected, rel=1e-12)


def test_multiclass_ece_uses_top_label_confidence() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.75, 0.05]])
    target = np.array([0, 1, 2, 1])
    # confidences 0.7, 0.6, 0.8, 0.75 with correctness 1, 0, 1, 1; two bins split at 0.5/1.0
    expected = abs(np.mean([0.7, 0.6, 0.8, 0.75]) - 0.75)
    assert expected_calibration_error(probs, target, bins=2) == pytest.approx(expected)


def test_calibration_ratio_binary_and_per_class() -> None:
    assert calibration_ratio(np.array([0.5, 0.5, 0.2]), np.array([1, 0, 0])) == pytest.approx(1.2)
    probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    ratio = calibration_ratio(probs, np.array([0, 1, 1]))
    assert np.allclose(ratio, [1.4 / 1, 1.6 / 2])


def test_calibration_ratio_without_positives_is_an_error() -> None:
    with pytest.raises(CrossentError, match="no positives"):
        calibration_ratio(np.array([0.5, 0.1]), np.array([0, 0]))


def test_bad_bins_and_strategy_are_errors() -> None:
    with pytest.raises(CrossentError, match="bins = 0 must be an integer >= 1"):
        reliability_curve(np.array([0.5]), np.array([1]), bins=0)
    with pytest.raises(CrossentError, match="strategy = 'log'"):
        reliability_curve(np.array([0.5]), np.array([1]), strategy="log")  # type: ignore[arg-type]
