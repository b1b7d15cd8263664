"""Calibration: do predicted probabilities match observed frequencies?

Binary predictions (1-D ``probs`` = P(y = 1)) are compared with the observed rate of ``y = 1``.
Multi-class predictions (2-D ``probs`` of shape (N, C)) use the top-label convention of
Guo et al. (2017): the confidence ``max_c probs[i, c]`` against whether ``argmax_c`` is correct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crossent._validation.arrays import FloatArray, IntArray
from crossent._validation.choices import BinStrategy, check_choice
from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.metrics.probabilistic import prepare


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin calibration statistics: the data behind a reliability diagram.

    Attributes:
        edges: (bins + 1,) bin edges in [0, 1]. A prediction equal to an inner edge falls in
            the lower bin (scikit-learn's ``calibration_curve`` convention).
        mean_predicted: (bins,) weighted mean predicted probability (or confidence) per bin;
            NaN in an empty bin.
        observed: (bins,) weighted observed frequency of the event per bin; NaN in an empty bin.
        weight: (bins,) total sample weight (the count without weights) per bin.
    """

    edges: FloatArray
    mean_predicted: FloatArray
    observed: FloatArray
    weight: FloatArray

    @classmethod
    def from_bin_sums(
        cls,
        edges: ArrayLike,
        predicted_sum: ArrayLike,
        observed_sum: ArrayLike,
        weight: ArrayLike,
    ) -> ReliabilityCurve:
        """Build a curve from per-bin weighted sums (what a streaming accumulator keeps)."""
        weight_array = np.asarray(weight, dtype=np.float64)
        filled = weight_array > 0
        safe = np.where(filled, weight_array, 1.0)
        mean_predicted = np.where(filled, np.asarray(predicted_sum, np.float64) / safe, np.nan)
        observed = np.where(filled, np.asarray(observed_sum, np.float64) / safe, np.nan)
        return cls(np.asarray(edges, np.float64), mean_predicted, observed, weight_array)

    @property
    def expected_calibration_error(self) -> float:
        """Weighted mean over bins of |mean predicted - observed| (empty bins weigh 0)."""
        total = float(self.weight.sum())
        if total <= 0:
            raise CrossentError("reliability curve is empty: no predictions were added")
        filled = self.weight > 0
        gaps = np.abs(self.mean_predicted[filled] - self.observed[filled])
        return float(np.sum(self.weight[filled] * gaps) / total)


def confidence_and_outcome(probs: FloatArray, target: IntArray) -> tuple[FloatArray, FloatArray]:
    """(predicted probability of the event, 1.0 where the event happened) for each row.

    Binary: P(y = 1) and y. Multi-class (top label): the largest probability and whether its
    class is the target. The inputs are already checked
    (:func:`crossent.metrics.probabilistic.prepare`).
    """
    if probs.ndim == 1:
        return probs.astype(np.float64), target.astype(np.float64)
    predicted_class = np.argmax(probs, axis=1)
    confidence = probs[np.arange(probs.shape[0]), predicted_class]
    return confidence.astype(np.float64), (predicted_class == target).astype(np.float64)


def bin_sums(
    index: NDArray[np.intp],
    predicted: FloatArray,
    outcome: FloatArray,
    weight: FloatArray | None,
    bins: int,
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Per bin: the weighted sums of ``predicted`` and ``outcome``, and the total weight."""
    if weight is None:
        return (
            np.bincount(index, weights=predicted, minlength=bins),
            np.bincount(index, weights=outcome, minlength=bins),
            np.bincount(index, minlength=bins).astype(np.float64),
        )
    return (
        np.bincount(index, weights=weight * predicted, minlength=bins),
        np.bincount(index, weights=weight * outcome, minlength=bins),
        np.bincount(index, weights=weight, minlength=bins),
    )


def bin_edges(predicted: FloatArray, bins: int, strategy: BinStrategy) -> FloatArray:
    """Uniform edges on [0, 1], or edges at the quantiles of ``predicted``."""
    bins = check_int(bins, "bins", low=1)
    check_choice(strategy, "strategy", BinStrategy)
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, bins + 1)
    if predicted.size == 0:
        raise CrossentError("quantile bins need at least one prediction")
    return np.percentile(predicted, np.linspace(0.0, 100.0, bins + 1))


def bin_index(predicted: FloatArray, edges: FloatArray, *, uniform: bool = False) -> np.ndarray:
    """Bin of each prediction; a value on an inner edge goes to the lower bin.

    ``uniform=True`` (edges ``np.linspace(0, 1, bins + 1)``) computes the bin arithmetically
    and corrects it against the actual edges, giving exactly the ``searchsorted`` answer in a
    fraction of the time.
    """
    if not uniform:
        return np.searchsorted(edges[1:-1], predicted, side="left")
    bins = edges.shape[0] - 1
    index = np.clip(np.ceil(predicted * bins).astype(np.intp) - 1, 0, bins - 1)
    # the float product can land one bin off next to an edge: compare with the edges themselves
    index -= (index > 0) & (predicted <= edges[index])
    index += (index < bins - 1) & (predicted > edges[index + 1])
    return index


def reliability_curve(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    bins: int = 10,
    strategy: BinStrategy = "uniform",
    sample_weight: ArrayLike | None = None,
    labels: ArrayLike | None = None,
) -> ReliabilityCurve:
    """Mean predicted probability and observed frequency in each probability bin.

    Shapes: ``probs`` (N,) = P(y = 1) with ``target`` (N,) in {0, 1}; or ``probs`` (N, C) with
    integer ``target`` (N,) (top-label confidence against accuracy, Guo et al. 2017).

    With ``strategy="quantile"`` the edges are the (unweighted) quantiles of the predictions, as
    in scikit-learn. Unlike ``sklearn.calibration.calibration_curve`` empty bins are kept (NaN
    values, zero weight) so that curves from different data line up bin by bin.

    Raises:
        CrossentError: probabilities outside [0, 1], labels outside the classes, bad ``bins``.

    >>> curve = reliability_curve([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], bins=2)
    >>> curve.observed.tolist()
    [0.0, 1.0]

    References: Guo, Pleiss, Sun, Weinberger (2017), On Calibration of Modern Neural Networks.
    """
    prepared = prepare(probs, target, labels=labels, sample_weight=sample_weight)
    predicted, outcome = confidence_and_outcome(prepared.scores, prepared.target)
    edges = bin_edges(predicted, bins, strategy)
    index = bin_index(predicted, edges, uniform=strategy == "uniform")
    sums = bin_sums(index, predicted, outcome, prepared.weight, edges.shape[0] - 1)
    return ReliabilityCurve.from_bin_sums(edges, *sums)


def expected_calibration_error(
    probs: ArrayLike, target: ArrayLike, *, bins: int = 15, strategy: BinStrategy = "uniform",
    sample_weight: ArrayLike | None = None, labels: ArrayLike | None = None,
) -> float:
    """Expected calibration error: the weighted mean gap between confidence and frequency.

    .. math::
        \\mathrm{ECE} = \\sum_b \\frac{W_b}{W} \\left| \\bar p_b - \\bar y_b \\right|

    over bins ``b`` of the predicted probability (see :func:`reliability_curve` for shapes and
    binning). 0 is perfectly calibrated.

    >>> expected_calibration_error([0.25, 0.25, 0.25, 0.25], [0, 0, 0, 1], bins=4)
    0.0

    References: Naeini, Cooper, Hauskrecht (2015); Guo et al. (2017).
    """
    curve = reliability_curve(
        probs, target, bins=bins, strategy=strategy, sample_weight=sample_weight, labels=labels
    )
    return curve.expected_calibration_error


def calibration_ratio(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    labels: ArrayLike | None = None,
) -> float | FloatArray:
    """Predicted over observed events: sum of predicted probabilities / number of positives.

    Binary (1-D ``probs``): a float; 1 is calibrated on average, > 1 over-predicts. Multi-class
    (N, C): one ratio per class (expected count of class c / observed count of class c).

    Raises:
        CrossentError: a class (the positive class, for binary) never occurs in ``target``,
            so the ratio is undefined.

    >>> calibration_ratio([0.5, 0.5, 0.5, 0.5], [0, 1, 1, 1])
    0.6666666666666666
    """
    prepared = prepare(probs, target, labels=labels, sample_weight=sample_weight)
    predicted, observed = class_totals(prepared.scores, prepared.target, prepared.weight)
    return ratio_of_totals(predicted, observed, binary=prepared.scores.ndim == 1)


def class_totals(
    probs: FloatArray, target: IntArray, weight: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """Expected and observed weighted count of each class (binary: negative, positive).

    The expected count of class c is the weighted sum of its predicted probabilities.
    """
    weights = np.ones(probs.shape[0]) if weight is None else weight
    if probs.ndim == 1:
        predicted_positive = float(np.sum(weights * probs))
        observed_positive = float(np.sum(weights * target))
        total = float(np.sum(weights))
        return (
            np.array([total - predicted_positive, predicted_positive]),
            np.array([total - observed_positive, observed_positive]),
        )
    predicted = weights @ probs.astype(np.float64)
    observed = np.bincount(target, weights=weights, minlength=probs.shape[1])
    return predicted, observed.astype(np.float64)


def ratio_of_totals(
    predicted: FloatArray, observed: FloatArray, *, binary: bool
) -> float | FloatArray:
    """Predicted / observed count of the positive class (``binary``) or of every class."""
    if binary:
        if observed[1] <= 0:
            raise CrossentError("target has no positives, so predicted/observed is undefined")
        return float(predicted[1] / observed[1])
    return ratio_per_class(predicted, observed)


def ratio_per_class(predicted: NDArray[Any], observed: NDArray[Any]) -> FloatArray:
    """``predicted / observed`` per class, raising on a class that was never observed."""
    missing = observed <= 0
    if missing.any():
        raise CrossentError(
            f"class {int(np.argmax(missing))} never occurs in target, so its "
            "predicted/observed ratio is undefined"
        )
    return np.asarray(predicted / observed, dtype=np.float64)
