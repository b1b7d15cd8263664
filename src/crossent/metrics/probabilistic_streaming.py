"""Streaming log loss, normalized entropy, perplexity, Brier score and entropy.

Each is a weighted mean of per-row values (:func:`crossent.metrics.probabilistic.row_log_loss`,
:func:`~crossent.metrics.probabilistic.row_brier`, the row entropies), so the state is two sums
(and, for the cross-entropy family, the weighted count of each class for the prior). The
results equal the functional forms on all rows, up to float summation order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crossent._validation import arrays as checks
from crossent.metrics._accumulator import (
    BatchAccumulator,
    added_per_class,
    check_batch_classes,
    check_positive_weight,
    check_same,
    nothing_added,
)
from crossent.metrics.probabilistic import (
    InputKind,
    Prepared,
    entropy,
    normalized_from,
    prior_entropy,
    row_brier,
    row_log_loss,
    weighted_total,
)
from crossent.units import Base, log_divisor


class _ClassSums(BatchAccumulator):
    """Shared state of the cross-entropy family: summed loss, total weight, class weights."""

    def __init__(self, *, input_kind: InputKind = "probs", labels: ArrayLike | None = None):
        self.input_kind: InputKind = input_kind
        self.labels = labels
        self.loss_sum = 0.0  # nats, weighted
        self.weight_sum = 0.0
        self.rows = 0
        self.class_weight: NDArray[np.float64] | None = None

    def add_prepared(self, batch: Prepared) -> None:
        counts = np.bincount(batch.target, weights=batch.weight, minlength=batch.n_classes)
        check_batch_classes(counts.shape[0], self.class_weight)
        loss_sum, weight_sum = weighted_total(row_log_loss(batch, self.input_kind), batch.weight)
        self.loss_sum += loss_sum
        self.weight_sum += weight_sum
        self.rows += int(batch.target.shape[0])
        self.class_weight = added_per_class(self.class_weight, counts.astype(np.float64))

    def merge(self, other: Any) -> Any:
        """Add ``other``'s state into this accumulator; returns ``self``."""
        check_same("input_kind", self.input_kind, other.input_kind)
        self.loss_sum += other.loss_sum
        self.weight_sum += other.weight_sum
        self.rows += other.rows
        self.class_weight = added_per_class(self.class_weight, other.class_weight)
        return self

    def mean_loss_nats(self) -> float:
        check_positive_weight(self.weight_sum)
        return self.loss_sum / self.weight_sum

    def prior_entropy_nats(self) -> float:
        if self.class_weight is None:
            raise nothing_added()
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
        value_sum, weight_sum = weighted_total(values, weight)
        self.value_sum += value_sum
        self.weight_sum += weight_sum

    def merge(self, other: Any) -> Any:
        """Add ``other``'s state into this accumulator; returns ``self``."""
        self.value_sum += other.value_sum
        self.weight_sum += other.weight_sum
        return self

    def result(self) -> float:
        check_positive_weight(self.weight_sum)
        return self.value_sum / self.weight_sum


class BrierScore(_WeightedMean, BatchAccumulator):
    """Streaming :func:`crossent.metrics.brier_score`."""

    def __init__(self, *, labels: ArrayLike | None = None):
        super().__init__()
        self.labels = labels

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
