"""Shared input validation for losses and kernels.

Every public crossent function validates its arguments once, at the top, through these helpers;
kernels and metrics then assume valid input. Each helper raises
:class:`crossent.errors.CrossentError` whose message names the argument, the offending value
and its position, e.g. ``target[17] = 12 is outside [0, 10) (C = 10)``.

The checks are vectorised and cheap relative to a loss: a tensor is scanned with one or two
reductions (``sum``, ``aminmax``), and only when that cheap test fails is the first offending
element located (the slow path runs only on the way to raising an error, or when ``-inf``
logits are present).

Conventions: ``name`` is how the argument is called in the user's call (``"input"``,
``"target"``, ``"weight"``); positions are printed in the user's layout, so class dimension 1 of
an ``(N, C, d1, ...)`` input stays dimension 1 in messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from crossent.errors import CrossentError

TargetKind = Literal["index", "probs"]

REDUCTIONS = ("none", "sum", "mean")


def probability_tolerance(dtype: torch.dtype) -> float:
    """Tolerance for "sums to 1": ``max(1e-3, 2 * eps(dtype))``.

    A row of probabilities (or a soft target row) is accepted when ``|sum - 1| <= tol``. Each
    stored probability carries a relative rounding error of at most ``eps / 2``, so a correct
    row sums to 1 within ``eps / 2``; 1e-3 leaves room for probabilities produced in a lower
    precision and cast up. The values: float64 and float32 -> 1e-3, float16 -> 0.00195,
    bfloat16 -> 0.0156.
    """
    return max(1e-3, 2.0 * torch.finfo(dtype).eps)


def format_index(name: str, index: Sequence[int]) -> str:
    """``name[i, j, ...]``; ``name`` alone for a 0-d position."""
    if len(index) == 0:
        return name
    return f"{name}[{', '.join(str(int(i)) for i in index)}]"


def first_true(mask: torch.Tensor) -> tuple[int, ...]:
    """Position of the first ``True`` of ``mask`` in row-major order (``mask.any()`` holds)."""
    flat = int(mask.reshape(-1).to(torch.uint8).argmax().item())
    position: list[int] = []
    for size in reversed(mask.shape):
        position.append(flat % size)
        flat //= size
    return tuple(reversed(position))


def _format_value(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:.6g}"


def check_tensor(value: object, name: str) -> torch.Tensor:
    """``value`` itself if it is a ``torch.Tensor``; otherwise a CrossentError naming its type."""
    if not isinstance(value, torch.Tensor):
        raise CrossentError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_floating(tensor: torch.Tensor, name: str) -> None:
    """Raise unless ``tensor`` has a floating dtype (float16, bfloat16, float32, float64)."""
    check_tensor(tensor, name)
    if not tensor.is_floating_point():
        raise CrossentError(
            f"{name} has dtype {tensor.dtype}, expected a floating dtype "
            "(float16, bfloat16, float32 or float64)"
        )


def check_same_device(tensor: torch.Tensor, name: str, like: torch.Tensor) -> None:
    """Raise unless ``tensor`` lives on the same device as ``like`` (the input)."""
    if tensor.device != like.device:
        raise CrossentError(f"{name} is on {tensor.device}, but input is on {like.device}")


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; otherwise an error listing them."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        raise CrossentError(f"{name} = {value!r} is not one of {listed}")
    return value


def check_reduction(reduction: object) -> str:
    """``reduction`` if it is ``"none"``, ``"sum"`` or ``"mean"``."""
    return check_choice(reduction, "reduction", REDUCTIONS)


def check_unit_interval(value: object, name: str) -> float:
    """``value`` as a float if it is a real number in [0, 1] (e.g. ``label_smoothing``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CrossentError(f"{name} = {value!r} must be a number in [0, 1]")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also rejects nan
        raise CrossentError(f"{name} = {value!r} is outside [0, 1]")
    return number


def check_label_smoothing(value: object) -> float:
    """``label_smoothing`` as a float in [0, 1]."""
    return check_unit_interval(value, "label_smoothing")


def check_nonnegative_number(value: object, name: str) -> float:
    """``value`` as a float if it is a finite real number >= 0 (e.g. focal ``gamma``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CrossentError(f"{name} = {value!r} must be a finite number >= 0")
    number = float(value)
    if not (number >= 0.0 and number != float("inf")):
        raise CrossentError(f"{name} = {value!r} must be a finite number >= 0")
    return number


def check_eps(eps: object, dtype: torch.dtype) -> float:
    """The probability clip: ``eps`` if given (a number in (0, 0.5)), else ``finfo(dtype).eps``."""
    if eps is None:
        return float(torch.finfo(dtype).eps)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise CrossentError(f"eps = {eps!r} must be a number in (0, 0.5) or None")
    number = float(eps)
    if not 0.0 < number < 0.5:
        raise CrossentError(f"eps = {eps!r} is outside (0, 0.5)")
    return number


def check_finite(
    tensor: torch.Tensor, name: str, *, allow_neg_inf: bool = False, row_dim: int = 0
) -> bool:
    """Raise if ``tensor`` holds NaN or ``+inf`` (and ``-inf`` unless ``allow_neg_inf``).

    Returns whether ``tensor`` holds ``-inf`` (only possible with ``allow_neg_inf``), so that
    callers can run :func:`check_rows_not_all_neg_inf` only when it matters.

    The message names the first offending row (index along ``row_dim``) and element, e.g.
    ``input row 3 is not finite: input[3, 1] = nan``. ``allow_neg_inf=True`` is for logits and
    log-probabilities, where ``-inf`` means "probability 0".

    Fast path: one ``sum`` (no temporary the size of the tensor); only when the sum is not
    finite (a non-finite element, ``-inf`` logits, or overflow of the sum) is the tensor
    scanned element-wise.
    """
    data = tensor.detach()
    if data.numel() == 0:
        return False
    accumulate = torch.float32 if data.dtype in (torch.float16, torch.bfloat16) else None
    if bool(torch.isfinite(data.sum(dtype=accumulate))):
        return False
    if allow_neg_inf:
        bad = torch.isnan(data) | (data == float("inf"))
    else:
        bad = ~torch.isfinite(data)
    if not bool(bad.any()):
        return bool((data == float("-inf")).any())
    position = first_true(bad)
    value = float(data[position].item())
    row = f"{name} row {position[row_dim]}" if data.dim() > 0 else name
    hint = " (-inf is allowed: it means probability 0)" if allow_neg_inf else ""
    raise CrossentError(
        f"{row} is not finite: {format_index(name, position)} = {_format_value(value)}{hint}"
    )


def check_rows_not_all_neg_inf(tensor: torch.Tensor, name: str, *, class_dim: int = 1) -> None:
    """Raise if some row of logits / log-probabilities is ``-inf`` in every class.

    Such a row gives probability 0 to every class, so it is no distribution at all.
    Message: ``input row 3 is -inf in every class (no class has positive probability)``.
    """
    data = tensor.detach()
    if data.numel() == 0:
        return
    dead = data.amax(dim=class_dim) == float("-inf")
    if bool(dead.any()):
        position = first_true(dead)
        label = _row_label(name, position, class_dim, data.dim())
        raise CrossentError(f"{label} is -inf in every class (no class has positive probability)")


def check_index_target(
    target: torch.Tensor, num_classes: int, ignore_index: int | None, name: str = "target"
) -> None:
    """Raise unless every entry of integer ``target`` is in [0, C) or equals ``ignore_index``.

    Message: ``target[17] = 12 is outside [0, 10) (C = 10)``; a floating target of indices gets
    a dtype error (pass integer class indices, or class probabilities of the input's shape).
    """
    check_tensor(target, name)
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise CrossentError(
            f"{name} has dtype {target.dtype}: class indices must be an integer tensor "
            "(or pass class probabilities with the input's shape)"
        )
    data = target.detach()
    if data.numel() == 0:
        return
    low, high = torch.aminmax(data)
    if int(low) >= 0 and int(high) < num_classes:
        return
    bad = (data < 0) | (data >= num_classes)
    if ignore_index is not None:
        bad &= data != ignore_index
    if not bool(bad.any()):
        return
    position = first_true(bad)
    value = int(data[position].item())
    raise CrossentError(
        f"{format_index(name, position)} = {value} is outside [0, {num_classes}) "
        f"(C = {num_classes})"
    )


def check_class_weight(
    weight: object, num_classes: int, like: torch.Tensor, name: str = "weight"
) -> torch.Tensor:
    """Validate a per-class weight vector: shape (C,), floating, finite, >= 0, input's device.

    Returns the weight (unchanged). Messages name the shape or the first bad entry, e.g.
    ``weight[2] = -1 is negative; class weights must be >= 0``.
    """
    tensor = check_tensor(weight, name)
    if tensor.dim() != 1 or tensor.shape[0] != num_classes:
        raise CrossentError(
            f"{name} has shape {tuple(tensor.shape)}, expected ({num_classes},): "
            f"one weight per class (C = {num_classes})"
        )
    check_floating(tensor, name)
    check_same_device(tensor, name, like)
    check_finite(tensor, name)
    data = tensor.detach()
    if data.numel() and float(data.min()) < 0:
        position = first_true(data < 0)
        raise CrossentError(
            f"{format_index(name, position)} = {_format_value(float(data[position]))} is "
            "negative; class weights must be >= 0"
        )
    return tensor


def check_target_shape(
    input: torch.Tensor, target: torch.Tensor, class_dim: int = 1
) -> TargetKind:
    """Classify ``target`` against an ``(N, C, d1, ...)`` input (class dim ``class_dim``).

    Returns ``"index"`` for class indices of shape ``(N, d1, ...)`` (the input's shape without
    the class dim) and ``"probs"`` for a target of the input's own shape (one-hot or soft
    probabilities). Anything else is a shape mismatch naming both shapes.
    """
    check_tensor(target, "target")
    expected_index = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.shape == input.shape:
        return "probs"
    if target.shape == expected_index:
        return "index"
    raise CrossentError(
        f"target has shape {tuple(target.shape)}, but input has shape {tuple(input.shape)}: "
        f"expected class indices of shape {tuple(expected_index)} or class probabilities "
        f"of shape {tuple(input.shape)}"
    )


def _row_label(name: str, position: tuple[int, ...], class_dim: int, ndim: int) -> str:
    """``input row 3`` for 2-d tensors, ``input[3, :, 2]`` for a row of an (N, C, d1) one."""
    if ndim == 2 and class_dim == 1:
        return f"{name} row {position[0]}"
    full = [str(i) for i in position]
    full.insert(class_dim, ":")
    return f"{name}[{', '.join(full)}]"


def check_probabilities(
    tensor: torch.Tensor, name: str, *, class_dim: int = 1, hint: str = ""
) -> None:
    """Raise unless ``tensor`` holds distributions along ``class_dim``.

    Every value must be finite and in [0, 1], and every row (the slice along ``class_dim``) must
    sum to 1 within :func:`probability_tolerance` of its dtype. Messages:
    ``input[4, 2] = 1.5 is outside [0, 1]``, ``input row 3 sums to 1.37, expected
    probabilities summing to 1`` followed by ``hint``.
    """
    check_unit_range(tensor, name, hint=hint)
    data = tensor.detach()
    if data.numel() == 0:
        return
    accumulate = torch.float64 if data.dtype == torch.float64 else torch.float32
    sums = data.sum(dim=class_dim, dtype=accumulate)
    tolerance = probability_tolerance(data.dtype)
    off = (sums - 1).abs() > tolerance
    if bool(off.any()):
        position = first_true(off)
        label = _row_label(name, position, class_dim, data.dim())
        raise CrossentError(
            f"{label} sums to {float(sums[position]):.6g}, expected probabilities summing "
            f"to 1 (tolerance {tolerance:.3g}){hint}"
        )


def check_log_probabilities(tensor: torch.Tensor, name: str) -> bool:
    """Raise if ``tensor`` (log-probabilities) holds NaN, ``+inf`` or a value > 1e-4.

    Returns whether it holds ``-inf`` (as :func:`check_finite`).

    ``-inf`` (probability 0) is allowed. Rows are NOT checked for ``logsumexp == 0``: that
    would cost more than the loss itself; a positive entry is the cheap tell-tale of logits
    passed as log-probabilities.
    """
    has_neg_inf = check_finite(tensor, name, allow_neg_inf=True)
    data = tensor.detach()
    if data.numel() and float(data.max()) > 1e-4:
        position = first_true(data > 1e-4)
        raise CrossentError(
            f"{format_index(name, position)} = {_format_value(float(data[position]))} is "
            'positive, so it is not a log-probability (pass input_kind="logits" for raw scores)'
        )
    return has_neg_inf


def check_not_nan(tensor: torch.Tensor, name: str, *, row_dim: int = 0) -> None:
    """Raise if ``tensor`` holds NaN (``±inf`` allowed, e.g. binary logits); names the row."""
    data = tensor.detach()
    if data.numel() == 0:
        return
    accumulate = torch.float32 if data.dtype in (torch.float16, torch.bfloat16) else None
    if not bool(torch.isnan(data.sum(dtype=accumulate))):
        return  # a sum is NaN if any term is NaN (or +inf meets -inf: rescanned below)
    bad = torch.isnan(data)
    if bool(bad.any()):
        position = first_true(bad)
        row = f"{name} row {position[row_dim]}" if data.dim() > 0 else name
        raise CrossentError(f"{row} is not finite: {format_index(name, position)} = nan")


def check_unit_range(tensor: torch.Tensor, name: str, *, hint: str = "") -> None:
    """Raise unless every value of ``tensor`` is finite and in [0, 1] (names the first one)."""
    check_finite(tensor, name)
    data = tensor.detach()
    if data.numel() == 0:
        return
    low, high = torch.aminmax(data)
    if float(low) < 0 or float(high) > 1:
        position = first_true((data < 0) | (data > 1))
        value = _format_value(float(data[position]))
        raise CrossentError(f"{format_index(name, position)} = {value} is outside [0, 1]{hint}")
