"""Streaming reliability curve, expected calibration error and predicted/observed ratio.

The state is a histogram of weighted sums per probability bin (the same sums
:func:`crossent.metrics.reliability_curve` takes, :func:`~crossent.metrics.calibration.bin_sums`)
and the expected and observed weight of each class. Uniform bins are exact.

``strategy="quantile"`` keeps a fine uniform histogram (16,384 bins) and puts each quantile
edge on that grid: the first grid point where the cumulative weight reaches j / bins. So edges
are within 1/16,384 of the weighted empirical quantiles (scikit-learn's ``np.percentile``
edges also interpolate between samples, which can differ by the gap between neighbouring
predictions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crossent._validation.choices import check_choice
from crossent._validation.numbers import check_int
from crossent.metrics import _accumulator
from crossent.metrics._accumulator import BatchAccumulator, added_per_class
from crossent.metrics.calibration import (
    BinStrategy,
    ReliabilityCurve,
    bin_index,
    bin_sums,
    class_totals,
    confidence_and_outcome,
    ratio_of_totals,
)
from crossent.metrics.probabilistic import Prepared

FINE_BINS = 16_384


class Calibration(BatchAccumulator):
    """Streaming reliability curve, expected calibration error and predicted/observed ratio.

    Binary (1-D probabilities) or multi-class top-label, as
    :func:`crossent.metrics.reliability_curve`. Uniform bins are exact; quantile bins are
    approximate (see the module docstring).
    """

    def __init__(
        self,
        *,
        bins: int = 15,
        strategy: BinStrategy = "uniform",
        labels: ArrayLike | None = None,
    ):
        self.bins = check_int(bins, "bins", low=1)
        check_choice(strategy, "strategy", BinStrategy)
        self.strategy: BinStrategy = strategy
        self.labels = labels
        grid = self.bins if strategy == "uniform" else FINE_BINS
        self.edges = np.linspace(0.0, 1.0, grid + 1)
        self.predicted_sum = np.zeros(grid)
        self.observed_sum = np.zeros(grid)
        self.weight = np.zeros(grid)
        self.class_predicted: NDArray[np.float64] | None = None
        self.class_observed: NDArray[np.float64] | None = None
        self.binary = True  # 1-D probabilities so far (ratio of the positive class)

    def add_prepared(self, batch: Prepared) -> None:
        _accumulator.check_batch_classes(batch.n_classes, self.class_observed)
        probs = batch.scores.astype(np.float64, copy=False)
        self.binary = probs.ndim == 1
        predicted, outcome = confidence_and_outcome(probs, batch.target)
        index = bin_index(predicted, self.edges, uniform=True)
        predicted_sum, observed_sum, weight = bin_sums(
            index, predicted, outcome, batch.weight, self.weight.shape[0]
        )
        self.predicted_sum += predicted_sum
        self.observed_sum += observed_sum
        self.weight += weight
        class_predicted, class_observed = class_totals(probs, batch.target, batch.weight)
        self.class_predicted = added_per_class(self.class_predicted, class_predicted)
        self.class_observed = added_per_class(self.class_observed, class_observed)

    def merge(self, other: Calibration) -> Calibration:
        """Add ``other``'s state into this accumulator; returns ``self``."""
        _accumulator.check_same("bins", (self.bins, self.strategy), (other.bins, other.strategy))
        self.predicted_sum = self.predicted_sum + other.predicted_sum
        self.observed_sum = self.observed_sum + other.observed_sum
        self.weight = self.weight + other.weight
        self.binary = self.binary and other.binary
        self.class_predicted = added_per_class(self.class_predicted, other.class_predicted)
        self.class_observed = added_per_class(self.class_observed, other.class_observed)
        return self

    def curve(self) -> ReliabilityCurve:
        """The reliability curve of everything added so far."""
        _accumulator.check_positive_weight(float(self.weight.sum()))
        if self.strategy == "uniform":
            return ReliabilityCurve.from_bin_sums(
                self.edges, self.predicted_sum, self.observed_sum, self.weight
            )
        # quantile edges on the fine grid: cut the cumulative weight into `bins` equal parts
        cumulative = np.cumsum(self.weight)
        cuts = np.searchsorted(cumulative, cumulative[-1] * np.arange(1, self.bins) / self.bins)
        cuts = np.minimum(cuts + 1, self.weight.shape[0])
        boundaries = np.concatenate([[0], cuts, [self.weight.shape[0]]])
        sums = [
            np.add.reduceat(s, boundaries[:-1])
            for s in (self.predicted_sum, self.observed_sum, self.weight)
        ]
        empty = boundaries[:-1] >= boundaries[1:]  # repeated cut: an empty coarse bin
        sums = [np.where(empty, 0.0, s) for s in sums]
        return ReliabilityCurve.from_bin_sums(self.edges[boundaries], *sums)

    def result(self) -> float:
        """Expected calibration error."""
        return self.curve().expected_calibration_error

    def ratio(self) -> float | NDArray[np.floating[Any]]:
        """Predicted / observed positives (binary) or per class (multi-class)."""
        if self.class_predicted is None or self.class_observed is None:
            raise _accumulator.nothing_added()
        return ratio_of_totals(self.class_predicted, self.class_observed, binary=self.binary)
