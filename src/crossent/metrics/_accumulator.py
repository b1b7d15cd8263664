"""What every accumulator of :mod:`crossent.metrics.streaming` shares.

A batch is validated once by :func:`crossent.metrics.probabilistic.prepare` (or trusted, with
``validate=False``) and handed to ``add_prepared``; two accumulators merge only when their
settings agree; an accumulator with nothing in it refuses to give a result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crossent.errors import CrossentError
from crossent.metrics.probabilistic import InputKind, Prepared, prepare


def prepared_batch(
    predictions: ArrayLike,
    target: ArrayLike,
    sample_weight: ArrayLike | None,
    labels: ArrayLike | None,
    input_kind: InputKind,
    validate: bool,
) -> Prepared:
    """The batch checked by :func:`prepare`, or taken as it is when ``validate`` is false."""
    if validate:
        return prepare(
            predictions, target, labels=labels, sample_weight=sample_weight, input_kind=input_kind
        )
    weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    return Prepared(np.asarray(predictions), np.asarray(target, dtype=np.int64), weight)


def check_same(name: str, mine: Any, theirs: Any) -> None:
    """Raise unless two accumulators about to merge have the same ``name`` (their settings)."""
    if mine != theirs:
        raise CrossentError(f"cannot merge accumulators with different {name}: {mine} vs {theirs}")


def nothing_added() -> CrossentError:
    """The error of an accumulator asked for a result before any row was added."""
    return CrossentError("no rows were added; nothing to score")


def check_positive_weight(weight_sum: float) -> None:
    """Raise unless the rows added so far have a positive total weight."""
    if weight_sum <= 0:
        raise CrossentError("no rows with positive weight were added; nothing to score")


def check_batch_classes(n_classes: int, seen: NDArray[Any] | None) -> None:
    """Raise unless a batch has as many classes as the batches before it (``seen``)."""
    if seen is not None and seen.shape[0] != n_classes:
        raise CrossentError(
            f"batch has {n_classes} classes but earlier batches had {seen.shape[0]}"
        )


def added_per_class(mine: NDArray[Any] | None, theirs: NDArray[Any] | None) -> NDArray[Any] | None:
    """The sum of two per-class vectors, either of which may not exist yet (``None``).

    A fresh array is returned (never ``theirs`` itself), so merging leaves ``other`` intact.
    """
    if theirs is None:
        return mine
    if mine is None:
        return theirs.copy()
    check_same("numbers of classes", mine.shape, theirs.shape)
    return mine + theirs


class BatchAccumulator:
    """An accumulator fed batches of predictions, target and weights.

    Subclasses keep their sums in ``add_prepared``; ``update`` validates a batch with the
    subclass's ``labels`` and ``input_kind`` first.
    """

    input_kind: InputKind = "probs"
    labels: ArrayLike | None = None

    def update(
        self,
        predictions: ArrayLike,
        target: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        validate: bool = True,
    ) -> None:
        """Add a batch: ``predictions`` (N,) or (N, C), ``target`` (N,), optional (N,) weights.

        ``validate=False`` skips the input checks, for inputs known to be valid.
        """
        batch = prepared_batch(
            predictions, target, sample_weight, self.labels, self.input_kind, validate
        )
        self.add_prepared(batch)

    def add_prepared(self, batch: Prepared) -> None:
        """Add a batch already checked by :func:`crossent.metrics.probabilistic.prepare`."""
        raise NotImplementedError
