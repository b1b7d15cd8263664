"""Mergeable accumulators: score data larger than memory, and combine partial results.

Each accumulator keeps a fixed-size state of sums, built from the same row-level functions as
the functional metrics. ``update(...)`` adds a batch, ``merge(other)`` adds another
accumulator's state into this one (and returns ``self``), ``result()`` gives the metric.
Scoring a file in batches, or its halves on two machines and merging, gives the same numbers
as the functional form on the whole data, up to float summation order, with two documented
exceptions:

- :class:`RocAuc` keeps a fixed histogram of scores (65,536 bins, uniform in logit space
  over [-28, 28], i.e. probabilities in about [7e-13, 1 - 7e-13]). Pairs of a positive and a
  negative that fall in the same bin count one half, as exact ties do, so the result differs
  from the exact AUC by at most :meth:`RocAuc.max_error` (reported beside it; typically
  below 1e-5). Exact AUC needs all scores (sorting), which fixed memory cannot hold.
- :class:`Calibration` with ``strategy="quantile"`` keeps a fine uniform histogram (16,384
  bins) and puts each quantile edge on that grid: the first grid point where the cumulative
  weight reaches j / bins. So edges are within 1/16,384 of the weighted empirical quantiles
  (scikit-learn's ``np.percentile`` edges also interpolate between samples, which can differ
  by the gap between neighbouring predictions). Uniform bins are exact.

``validate=False`` on ``update`` skips the input checks for hot loops whose inputs are known
to be valid (for example when :mod:`crossent.io` has already checked them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crossent._validation import arrays as checks
from crossent._validation.choices import check_choice
from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.metrics.calibration import (
    BinStrategy,
    ReliabilityCurve,
    bin_index,
    ratio_per_class,
)
from crossent.metrics.probabilistic import (
    InputKind,
    Prepared,
    entropy,
    normalized_from,
    prepare,
    prior_entropy,
    row_brier,
    row_log_loss,
)
from crossent.metrics.ranking import auc_from_counts
from crossent.metrics.ranking_streaming import HitRateAtK, Mrr, NdcgAtK, RankingMetrics, RecallAtK
from crossent.units import Base, log_divisor

FINE_BINS = 16_384
AUC_BINS = 65_536
AUC_LOGIT_RANGE = 28.0


def _trusted(
    predictions: ArrayLike,
    target: ArrayLike,
    sample_weight: ArrayLike | None,
    labels: ArrayLike | None,
    input_kind: InputKind,
    validate: bool,
) -> Prepared:
    if validate:
        return prepare(
            predictions, target, labels=labels, sample_weight=sample_weight, input_kind=input_kind
        )
    weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    return Prepared(np.asarray(predictions), np.asarray(target, dtype=np.int64), weight)


def _check_same(name: str, mine: Any, theirs: Any) -> None:
    if mine != theirs:
        raise CrossentError(f"cannot merge accumulators with different {name}: {mine} vs {theirs}")


class _ClassSums:
    """Shared state of the cross-entropy family: summed loss, total weight, class weights."""

    def __init__(self, *, input_kind: InputKind = "probs", labels: ArrayLike | None = None):
        self.input_kind: InputKind = input_kind
        self.labels = labels
        self.loss_sum = 0.0  # nats, weighted
        self.weight_sum = 0.0
        self.rows = 0
        self.class_weight: NDArray[np.float64] | None = None

    def update(
        self,
        predictions: ArrayLike,
        target: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        validate: bool = True,
    ) -> None:
        """Add a batch: ``predictions`` (N,) or (N, C), ``target`` (N,), optional weights."""
        batch = _trusted(predictions, target, sample_weight, self.labels, self.input_kind, validate)
        self.add_prepared(batch)

    def add_prepared(self, batch: Prepared) -> None:
        losses = row_log_loss(batch, self.input_kind)
        weight = batch.weight
        self.loss_sum += float(losses.sum() if weight is None else np.dot(losses, weight))
        self.weight_sum += float(batch.target.shape[0] if weight is None else weight.sum())
        self.rows += int(batch.target.shape[0])
        counts = np.bincount(batch.target, weights=weight, minlength=batch.n_classes)
        if self.class_weight is None:
            self.class_weight = counts.astype(np.float64)
        elif counts.shape != self.class_weight.shape:
            raise CrossentError(
                f"batch has {counts.shape[0]} classes but earlier batches had "
                f"{self.class_weight.shape[0]}"
            )
        else:
            self.class_weight += counts

    def merge(self, other: Any) -> Any:
        """Add ``other``'s state into this accumulator; returns ``self``."""
        _check_same("input_kind", self.input_kind, other.input_kind)
        self.loss_sum += other.loss_sum
        self.weight_sum += other.weight_sum
        self.rows += other.rows
        if other.class_weight is not None:
            if self.class_weight is None:
                self.class_weight = other.class_weight.copy()
            else:
                _check_same("numbers of classes", self.class_weight.shape, other.class_weight.shape)
                self.class_weight = self.class_weight + other.class_weight
        return self

    def mean_loss_nats(self) -> float:
        if self.weight_sum <= 0:
            raise CrossentError("no rows with positive weight were added; nothing to score")
        return self.loss_sum / self.weight_sum

    def prior_entropy_nats(self) -> float:
        if self.class_weight is None:
            raise CrossentError("no rows were added; nothing to score")
        return prior_entropy(self.class_weight / self.class_weight.sum())


class LogLoss(_ClassSums):
    """Streaming :func:`crossent.metrics.log_loss`; ``result()`` in ``base``."""

    def __init__(
        self,
        *,
        base: Base = "nats",
        input_kind: InputKind = "probs",
        labels: ArrayLike | None = None,
    ):
        super().__init__(input_kind=input_kind, labels=labels)
        self.divisor = log_divisor(base)

    def result(self) -> float:
        return self.mean_loss_nats() / self.divisor


class NormalizedEntropy(_ClassSums):
    """Streaming :func:`crossent.metrics.normalized_entropy` (He et al. 2014)."""

    def result(self) -> float:
        return normalized_from(self.mean_loss_nats(), self.prior_entropy_nats())


class Perplexity(_ClassSums):
    """Streaming :func:`crossent.metrics.perplexity`: ``exp`` of the mean loss in nats."""

    def result(self) -> float:
        return float(np.exp(self.mean_loss_nats()))


class _WeightedMean:
    def __init__(self) -> None:
        self.value_sum = 0.0
        self.weight_sum = 0.0

    def _add(self, values: NDArray[Any], weight: NDArray[Any] | None) -> None:
        self.value_sum += float(values.sum() if weight is None else np.dot(values, weight))
        self.weight_sum += float(values.shape[0] if weight is None else weight.sum())

    def merge(self, other: Any) -> Any:
        """Add ``other``'s state into this accumulator; returns ``self``."""
        self.value_sum += other.value_sum
        self.weight_sum += other.weight_sum
        return self

    def result(self) -> float:
        if self.weight_sum <= 0:
            raise CrossentError("no rows with positive weight were added; nothing to score")
        return self.value_sum / self.weight_sum


class BrierScore(_WeightedMean):
    """Streaming :func:`crossent.metrics.brier_score`."""

    def __init__(self, *, labels: ArrayLike | None = None):
        super().__init__()
        self.labels = labels

    def update(
        self,
        probs: ArrayLike,
        target: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        validate: bool = True,
    ) -> None:
        batch = _trusted(probs, target, sample_weight, self.labels, "probs", validate)
        self.add_prepared(batch)

    def add_prepared(self, batch: Prepared) -> None:
        self._add(row_brier(batch), batch.weight)


class Entropy(_WeightedMean):
    """Streaming :func:`crossent.metrics.entropy` (mean entropy of predicted distributions)."""

    def __init__(self, *, base: Base = "nats"):
        super().__init__()
        self.divisor = log_divisor(base)

    def update(self, probs: ArrayLike, sample_weight: ArrayLike | None = None) -> None:
        values = entropy(probs, reduction="none")
        weight = checks.sample_weight(sample_weight, np.shape(values)[0])
        self._add(np.asarray(values), weight)

    def result(self) -> float:
        return super().result() / self.divisor


class Calibration:
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

    def update(
        self,
        probs: ArrayLike,
        target: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        validate: bool = True,
    ) -> None:
        batch = _trusted(probs, target, sample_weight, self.labels, "probs", validate)
        self.add_prepared(batch)

    def add_prepared(self, batch: Prepared) -> None:
        probs = batch.scores.astype(np.float64, copy=False)
        weight = batch.weight
        self.binary = probs.ndim == 1
        if probs.ndim == 1:
            predicted = probs
            outcome = batch.target.astype(np.float64)
            predicted_total = float(probs.sum() if weight is None else np.dot(weight, probs))
            total = float(probs.shape[0] if weight is None else weight.sum())
            class_predicted = np.array([total - predicted_total, predicted_total])
        else:
            top = np.argmax(probs, axis=1)
            predicted = probs[np.arange(probs.shape[0]), top]
            outcome = (top == batch.target).astype(np.float64)
            class_predicted = probs.sum(axis=0) if weight is None else weight @ probs
        index = bin_index(predicted, self.edges, uniform=True)
        grid = self.weight.shape[0]
        if weight is None:
            self.predicted_sum += np.bincount(index, weights=predicted, minlength=grid)
            self.observed_sum += np.bincount(index, weights=outcome, minlength=grid)
            self.weight += np.bincount(index, minlength=grid)
        else:
            self.predicted_sum += np.bincount(index, weights=weight * predicted, minlength=grid)
            self.observed_sum += np.bincount(index, weights=weight * outcome, minlength=grid)
            self.weight += np.bincount(index, weights=weight, minlength=grid)
        class_observed = np.bincount(
            batch.target, weights=weight, minlength=batch.n_classes
        ).astype(np.float64)
        if self.class_predicted is None or self.class_observed is None:
            self.class_predicted, self.class_observed = class_predicted, class_observed
        else:
            self.class_predicted = self.class_predicted + class_predicted
            self.class_observed = self.class_observed + class_observed

    def merge(self, other: Calibration) -> Calibration:
        """Add ``other``'s state into this accumulator; returns ``self``."""
        _check_same("bins", (self.bins, self.strategy), (other.bins, other.strategy))
        self.predicted_sum = self.predicted_sum + other.predicted_sum
        self.observed_sum = self.observed_sum + other.observed_sum
        self.weight = self.weight + other.weight
        self.binary = self.binary and other.binary
        if other.class_predicted is not None and other.class_observed is not None:
            if self.class_predicted is None or self.class_observed is None:
                self.class_predicted = other.class_predicted.copy()
                self.class_observed = other.class_observed.copy()
            else:
                self.class_predicted = self.class_predicted + other.class_predicted
                self.class_observed = self.class_observed + other.class_observed
        return self

    def curve(self) -> ReliabilityCurve:
        """The reliability curve of everything added so far."""
        if self.weight.sum() <= 0:
            raise CrossentError("no rows with positive weight were added; nothing to score")
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
            raise CrossentError("no rows were added; nothing to score")
        if self.binary:
            if self.class_observed[1] <= 0:
                raise CrossentError("target has no positives, so predicted/observed is undefined")
            return float(self.class_predicted[1] / self.class_observed[1])
        return ratio_per_class(self.class_predicted, self.class_observed)


class RocAuc:
    """Streaming ROC AUC from a fixed histogram of scores (see the module docstring).

    Args:
        input_kind: ``"probs"`` (scores in [0, 1], binned by their logit) or ``"logits"``.
        bins: histogram size; memory is 16 bytes per bin.
    """

    def __init__(self, *, input_kind: InputKind = "probs", bins: int = AUC_BINS):
        self.input_kind: InputKind = input_kind
        self.bins = check_int(bins, "bins", low=2)
        self.positive = np.zeros(self.bins)
        self.negative = np.zeros(self.bins)

    def _bin(self, scores: NDArray[Any]) -> NDArray[np.intp]:
        values = scores.astype(np.float64, copy=False)
        if self.input_kind == "probs":
            with np.errstate(divide="ignore"):
                values = np.log(values / (1.0 - values))  # logit (one log); +-inf at 1 and 0
        position = (values + AUC_LOGIT_RANGE) * (self.bins / (2 * AUC_LOGIT_RANGE))
        return np.clip(position, 0, self.bins - 1).astype(np.intp)

    def update(
        self,
        scores: ArrayLike,
        target: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        validate: bool = True,
    ) -> None:
        batch = _trusted(scores, target, sample_weight, None, self.input_kind, validate)
        self.add_prepared(batch)

    def add_prepared(self, batch: Prepared) -> None:
        if batch.scores.ndim != 1:
            raise CrossentError("ROC AUC needs binary (1-D) scores")
        index = self._bin(batch.scores)
        # one bincount over (bin, class) pairs: column 0 negatives, column 1 positives
        pairs = 2 * index + batch.target
        counts = np.bincount(pairs, weights=batch.weight, minlength=2 * self.bins)
        counts = counts.reshape(self.bins, 2)
        self.negative += counts[:, 0]
        self.positive += counts[:, 1]

    def merge(self, other: RocAuc) -> RocAuc:
        """Add ``other``'s state into this accumulator; returns ``self``."""
        _check_same("settings", (self.input_kind, self.bins), (other.input_kind, other.bins))
        self.positive = self.positive + other.positive
        self.negative = self.negative + other.negative
        return self

    def result(self) -> float:
        return auc_from_counts(self.positive, self.negative)

    def max_error(self) -> float:
        """Largest possible distance of :meth:`result` from the exact AUC.

        Only positive/negative pairs sharing a bin are uncertain, and each counts one half.
        """
        pairs = float(self.positive.sum() * self.negative.sum())
        if pairs <= 0:
            raise CrossentError("ROC AUC needs both classes; nothing to bound")
        return float(0.5 * np.dot(self.positive, self.negative) / pairs)


__all__ = [
    "BrierScore",
    "Calibration",
    "Entropy",
    "HitRateAtK",
    "LogLoss",
    "Mrr",
    "NdcgAtK",
    "NormalizedEntropy",
    "Perplexity",
    "RankingMetrics",
    "RecallAtK",
    "RocAuc",
]
