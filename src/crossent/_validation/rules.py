"""The value rules, each raising one message naming the first offender.

Every function takes a NumPy array or a torch tensor (``name`` is how the argument is called in
the user's call) and raises :class:`crossent.errors.CrossentError`; the masks come from
:mod:`crossent._validation.masks`, the wording from :mod:`crossent._validation.offender`.

Cost: each rule makes one cheap pass over the data (a ``sum`` or ``aminmax`` reduction for
torch tensors, which allocates nothing the size of the input), and only when that pass fails
builds a mask to locate the first offender. For a torch tensor on a GPU each rule waits for
the device once (the pass's result is read on the host); validation turned off
(:mod:`crossent._validation.switch`) skips these rules altogether.
"""

from __future__ import annotations

import math
from typing import Any

from crossent._validation import masks
from crossent._validation.masks import Values
from crossent._validation.offender import element_message, row_message, slice_label
from crossent.errors import CrossentError


def _value_at(values: Values, position: tuple[int, ...]) -> float:
    """The element as a Python number (an ``int`` for integer data)."""
    return values[position].item()  # type: ignore[no-any-return]


def _detach(values: Values) -> Values:
    return values if masks.is_numpy(values) else values.detach()


def _is_empty(values: Values) -> bool:
    return bool(values.size == 0) if masks.is_numpy(values) else values.numel() == 0


def _all_finite_fast(values: Values) -> bool:
    """True when every element is finite, judged from one ``sum`` (False: look closer)."""
    if masks.is_numpy(values):
        return not masks.any_true(masks.not_finite(values))
    import torch  # a tensor was passed, so torch is already loaded

    accumulate = torch.float32 if values.dtype in (torch.float16, torch.bfloat16) else None
    return bool(torch.isfinite(values.sum(dtype=accumulate)))


def _within(values: Values, low: float, high: float) -> bool:
    """Whether every (finite) value lies in [low, high], from one min/max reduction."""
    if _is_empty(values):
        return True
    if masks.is_numpy(values):
        return bool(values.min() >= low and values.max() <= high)
    import torch  # a tensor was passed, so torch is already loaded

    smallest, largest = torch.aminmax(values)
    return float(smallest) >= low and float(largest) <= high


def check_finite(
    values: Values, name: str, *, allow_neg_inf: bool = False, row_dim: int = 0, hint: str = ""
) -> bool:
    """Raise if ``values`` holds NaN or ``+inf`` (and ``-inf`` unless ``allow_neg_inf``).

    Returns whether ``values`` holds ``-inf`` (only possible with ``allow_neg_inf``: logits and
    log-probabilities, where ``-inf`` means probability 0), so that callers can look for rows
    that are ``-inf`` everywhere only when it matters.

    Message: ``input row 3 is not finite: input[3, 1] = nan`` (the row is the index along
    ``row_dim``). A tensor is first summed once (no temporary the size of the input); only
    when that sum is not finite is it scanned element-wise.
    """
    data = _detach(values)
    if _is_empty(data):
        return False
    if _all_finite_fast(data):
        return False
    bad = masks.nan_or_pos_inf(data) if allow_neg_inf else masks.not_finite(data)
    if not masks.any_true(bad):
        return masks.any_true(data == float("-inf"))
    position = masks.first_true(bad)
    allowed = " (-inf is allowed: it means probability 0)" if allow_neg_inf else ""
    message = row_message(name, position, _value_at(data, position), "is not finite", row_dim)
    raise CrossentError(f"{message}{allowed}{hint}")


def check_not_nan(values: Values, name: str, *, row_dim: int = 0) -> None:
    """Raise if ``values`` holds NaN (``±inf`` allowed, e.g. binary logits); names the row."""
    data = _detach(values)
    if _is_empty(data) or _all_finite_fast(data):
        return
    bad = masks.nan(data)
    if masks.any_true(bad):
        position = masks.first_true(bad)
        raise CrossentError(row_message(name, position, math.nan, "is not finite", row_dim))


def raise_first(values: Values, bad: Values, name: str, problem: str) -> None:
    """Raise ``element_message`` for the first ``True`` of ``bad``, if there is one."""
    if masks.any_true(bad):
        position = masks.first_true(bad)
        raise CrossentError(element_message(name, position, _value_at(values, position), problem))


def _check_within(
    values: Values, name: str, low: float, high: float, mask: Any, problem: str
) -> None:
    """Finite, then in [low, high] by one min/max pass; ``mask`` locates an offender."""
    check_finite(values, name)
    data = _detach(values)
    if not _within(data, low, high):
        raise_first(data, mask(data), name, problem)


def check_unit_interval(values: Values, name: str, *, hint: str = "") -> None:
    """Raise unless every value is finite and in [0, 1].

    Message: ``probs[4, 2] = 1.5 is outside [0, 1]`` followed by ``hint``.
    """
    _check_within(values, name, 0.0, 1.0, masks.outside_unit_interval, f"is outside [0, 1]{hint}")


def check_nonnegative(values: Values, name: str, *, hint: str = "") -> None:
    """Raise unless every value is finite and >= 0.

    Message: ``weight[2] = -3 is negative`` followed by ``hint``.
    """
    _check_within(values, name, 0.0, math.inf, masks.negative, f"is negative{hint}")


def off_simplex_message(
    values: Values, name: str, off: Values, *, class_dim: int = 1
) -> str:
    """``input row 3 sums to 1.37, expected probabilities summing to 1 (tolerance 0.001)``
    for the first ``True`` row of ``off`` (a :func:`masks.off_simplex` of ``values``)."""
    position = masks.first_true(off)
    sums = masks.row_sums(values, class_dim)
    label = slice_label(name, position, class_dim, values.ndim)
    return (
        f"{label} sums to {float(sums[position]):.6g}, expected probabilities summing to 1 "
        f"(tolerance {masks.sum_tolerance(values.dtype):.3g})"
    )


def check_probabilities(
    values: Values, name: str, *, class_dim: int = 1, hint: str = ""
) -> None:
    """Raise unless ``values`` holds distributions along ``class_dim``.

    Every value must be finite and in [0, 1], and every row (slice along ``class_dim``) must
    sum to 1 within :func:`crossent._validation.masks.sum_tolerance`.
    """
    check_unit_interval(values, name, hint=hint)
    data = _detach(values)
    if _is_empty(data):
        return
    off = masks.off_simplex(data, class_dim)
    if masks.any_true(off):
        raise CrossentError(off_simplex_message(data, name, off, class_dim=class_dim) + hint)


def check_rows_not_all_neg_inf(values: Values, name: str, *, class_dim: int = 1) -> None:
    """Raise if some row of logits / log-probabilities is ``-inf`` in every class.

    Such a row gives probability 0 to every class, so it is no distribution at all. Message:
    ``input row 3 is -inf in every class (no class has positive probability)``.
    """
    data = _detach(values)
    if _is_empty(data):
        return
    dead = (data.max(axis=class_dim) if masks.is_numpy(data) else data.amax(dim=class_dim)) == (
        float("-inf")
    )
    if masks.any_true(dead):
        position = masks.first_true(dead)
        label = slice_label(name, position, class_dim, data.ndim)
        raise CrossentError(f"{label} is -inf in every class (no class has positive probability)")
