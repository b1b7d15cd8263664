"""The rules that only NumPy inputs of :mod:`crossent.metrics` have: conversion to a float
array, sample weights, class labels and matching lengths.

The value rules shared with torch (finite, [0, 1], >= 0, sums to 1) live in
:mod:`crossent._validation.rules`. Every function takes the value first and its name second.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crossent._validation import masks, rules
from crossent._validation.offender import format_position, format_value
from crossent.errors import CrossentError

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]

_PROBS_HINT = "; expected probabilities"


def float_array(value: ArrayLike, name: str, *, ndims: Sequence[int] = (1,)) -> FloatArray:
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
    rules.check_finite(array, name)
    return array


def warn_rows_off_simplex(probs: FloatArray, name: str) -> None:
    """Warn (like scikit-learn, never fix silently) when rows of ``probs`` do not sum to 1
    within :func:`crossent._validation.masks.sum_tolerance`."""
    off = masks.off_simplex(probs, axis=1)
    if off.any():
        warnings.warn(
            f"{rules.off_simplex_message(probs, name, off)}; {int(off.sum())} rows do not "
            "sum to 1: make sure to pass probabilities",
            UserWarning,
            stacklevel=3,
        )


def probabilities(value: ArrayLike, name: str, *, ndims: Sequence[int] = (1, 2)) -> FloatArray:
    """Finite values in [0, 1]; 2-D rows that do not sum to 1 warn."""
    probs = float_array(value, name, ndims=ndims)
    rules.check_unit_interval(probs, name, hint=_PROBS_HINT)
    if probs.ndim == 2:
        if probs.shape[1] < 2:
            raise CrossentError(
                f"{name} has shape {probs.shape}; a 2-D input needs one column per class "
                "(at least 2); pass a 1-D array of P(y = 1) for binary problems"
            )
        warn_rows_off_simplex(probs, name)
    return probs


def check_length(array: NDArray[Any], name: str, n: int, other: str) -> None:
    """Raise unless ``array`` has ``n`` rows, like ``other``."""
    if array.shape[0] != n:
        raise CrossentError(f"{name} has {array.shape[0]} rows but {other} has {n}")


def sample_weight(value: ArrayLike | None, n: int, other: str = "probs") -> FloatArray | None:
    """``None`` or finite non-negative float64 weights of length ``n`` with a positive sum."""
    if value is None:
        return None
    weights = float_array(value, "sample_weight", ndims=(1,)).astype(np.float64, copy=False)
    check_length(weights, "sample_weight", n, other)
    rules.check_nonnegative(weights, "sample_weight")
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
    if labels is not None:
        return _indices_of_labels(target, n_classes, np.asarray(labels), name)
    if target.dtype.kind == "b":
        return target.astype(np.int64)
    if target.dtype.kind == "f":
        rules.check_finite(target, name)
        fractional = target != np.round(target)
        if fractional.any():
            row = int(np.argmax(fractional))
            raise CrossentError(
                f"{format_position(name, (row,))} = {format_value(float(target[row]))} is not "
                "an integer class label"
            )
    elif target.dtype.kind not in "iu":
        raise CrossentError(
            f"{name} has dtype {target.dtype}; pass labels=[...] to name the classes"
        )
    indices = target.astype(np.int64)
    outside = (indices < 0) | (indices >= n_classes)
    if outside.any():
        row = int(np.argmax(outside))
        raise CrossentError(
            f"{format_position(name, (row,))} = {format_value(float(target[row]))} is outside "
            f"[0, {n_classes}) (C = {n_classes}); pass labels=[...] to name the classes"
        )
    return indices


def _indices_of_labels(
    target: NDArray[Any], n_classes: int, label_array: NDArray[Any], name: str
) -> IntArray:
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
