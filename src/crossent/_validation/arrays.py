"""NumPy input validation for :mod:`crossent.metrics`.

Every metric checks its inputs once, at the top, through these helpers; the arithmetic after
them assumes valid input. Messages name the argument, the offending value and its position
(``probs[3, 1] = 1.2 is outside [0, 1]``), so a user can find the bad row.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crossent.errors import CrossentError

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]


def _index_text(index: tuple[Any, ...]) -> str:
    return ", ".join(str(int(i)) for i in index)


def float_array(name: str, value: ArrayLike, *, ndims: Sequence[int] = (1,)) -> FloatArray:
    """``value`` as a float32/float64 array with one of ``ndims`` dimensions, all finite.

    Integer and boolean input becomes float64; float32 stays float32 (so clipping follows the
    input dtype, as in scikit-learn).
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise CrossentError(f"{name} could not be read as an array: {error}") from None
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    elif array.dtype.kind != "f":
        raise CrossentError(f"{name} has dtype {array.dtype}, expected numbers")
    elif array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    if array.ndim not in ndims:
        expected = " or ".join(f"{d}-D" for d in ndims)
        raise CrossentError(f"{name} has shape {array.shape}, expected {expected}")
    check_finite(name, array)
    return array


def check_finite(name: str, array: NDArray[Any]) -> None:
    """Raise naming the first non-finite element of ``array``."""
    finite = np.isfinite(array)
    if not finite.all():
        index = np.unravel_index(int(np.argmin(finite.ravel())), array.shape)
        raise CrossentError(f"{name}[{_index_text(index)}] = {array[index]} is not finite")


def check_unit_interval(name: str, array: FloatArray) -> None:
    """Raise naming the first element of ``array`` outside [0, 1]."""
    bad = (array < 0) | (array > 1)
    if bad.any():
        index = np.unravel_index(int(np.argmax(bad.ravel())), array.shape)
        raise CrossentError(
            f"{name}[{_index_text(index)}] = {array[index]} is outside [0, 1]; "
            "expected probabilities"
        )


def warn_rows_not_normalised(name: str, probs: FloatArray) -> None:
    """Warn (like scikit-learn, never fix silently) when rows of ``probs`` do not sum to 1."""
    sums = probs.sum(axis=1, dtype=np.float64)
    tolerance = math.sqrt(float(np.finfo(probs.dtype).eps))
    bad = ~np.isclose(sums, 1.0, rtol=tolerance, atol=0.0)
    if bad.any():
        row = int(np.argmax(bad))
        warnings.warn(
            f"{name} row {row} sums to {sums[row]:.6g} ({int(bad.sum())} rows do not sum to 1); "
            "make sure to pass probabilities",
            UserWarning,
            stacklevel=3,
        )


def probabilities(name: str, value: ArrayLike, *, ndims: Sequence[int] = (1, 2)) -> FloatArray:
    """Finite values in [0, 1]; 2-D rows that do not sum to 1 warn."""
    probs = float_array(name, value, ndims=ndims)
    check_unit_interval(name, probs)
    if probs.ndim == 2:
        if probs.shape[1] < 2:
            raise CrossentError(
                f"{name} has shape {probs.shape}; a 2-D input needs one column per class "
                "(at least 2); pass a 1-D array of P(y = 1) for binary problems"
            )
        warn_rows_not_normalised(name, probs)
    return probs


def check_length(name: str, array: NDArray[Any], n: int, other: str) -> None:
    """Raise unless ``array`` has ``n`` rows, like ``other``."""
    if array.shape[0] != n:
        raise CrossentError(f"{name} has {array.shape[0]} rows but {other} has {n}")


def sample_weight(value: ArrayLike | None, n: int, other: str = "probs") -> FloatArray | None:
    """``None`` or finite non-negative float64 weights of length ``n`` with a positive sum."""
    if value is None:
        return None
    weights = float_array("sample_weight", value, ndims=(1,)).astype(np.float64, copy=False)
    check_length("sample_weight", weights, n, other)
    negative = weights < 0
    if negative.any():
        row = int(np.argmax(negative))
        raise CrossentError(f"sample_weight[{row}] = {weights[row]} is negative")
    if n and weights.sum() <= 0:
        raise CrossentError("sample_weight sums to 0; at least one weight must be positive")
    return weights


def class_indices(
    value: ArrayLike, n_classes: int, *, labels: ArrayLike | None = None, name: str = "target"
) -> IntArray:
    """Map ``value`` to integer class indices in ``[0, n_classes)``.

    Without ``labels`` the target must already hold integers (or booleans) in range. With
    ``labels`` (the class label of each probability column, in column order) every target
    value must be one of them.
    """
    target = np.asarray(value)
    if target.ndim != 1:
        raise CrossentError(f"{name} has shape {target.shape}, expected 1-D class labels")
    if labels is None:
        if target.dtype.kind == "b":
            return target.astype(np.int64)
        if target.dtype.kind == "f":
            check_finite(name, target)
            fractional = target != np.round(target)
            if fractional.any():
                row = int(np.argmax(fractional))
                raise CrossentError(f"{name}[{row}] = {target[row]} is not an integer class label")
        elif target.dtype.kind not in "iu":
            raise CrossentError(
                f"{name} has dtype {target.dtype}; pass labels=[...] to name the classes"
            )
        indices = target.astype(np.int64)
        outside = (indices < 0) | (indices >= n_classes)
        if outside.any():
            row = int(np.argmax(outside))
            raise CrossentError(
                f"{name}[{row}] = {target[row]} is outside [0, {n_classes}) "
                f"(C = {n_classes}); pass labels=[...] to name the classes"
            )
        return indices
    label_array = np.asarray(labels)
    if label_array.ndim != 1 or label_array.shape[0] != n_classes:
        raise CrossentError(
            f"labels has {label_array.size} entries but the predictions have {n_classes} classes"
        )
    if np.unique(label_array).shape[0] != n_classes:
        raise CrossentError(f"labels = {label_array.tolist()} has repeated entries")
    order = np.argsort(label_array, kind="stable")
    sorted_labels = label_array[order]
    try:
        position = np.searchsorted(sorted_labels, target)
    except TypeError:
        raise CrossentError(
            f"{name} values cannot be compared with labels = {label_array.tolist()}"
        ) from None
    position = np.minimum(position, n_classes - 1)
    found = sorted_labels[position] == target
    if not np.all(found):
        row = int(np.argmin(found))
        raise CrossentError(
            f"{name}[{row}] = {target[row].item()!r} is not in labels = {label_array.tolist()}"
        )
    return order[position].astype(np.int64)


def positive_int(name: str, value: int, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise CrossentError(f"{name} = {value!r} must be an integer >= {minimum}")
    return int(value)
