"""Validate and lay out the arguments of the loss functions, once, before any computing.

:func:`prepare_multiclass` checks every argument of :func:`crossent.cross_entropy` /
:func:`crossent.focal_loss` and reshapes ``(N, C, d1, ...)`` input to the ``(M, C)``
class-last layout the kernels take; :func:`restore_shape` undoes it for ``reduction="none"``.
:func:`prepare_binary` does the same for the element-wise binary losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from crossent._validation import tensors as _checks
from crossent.errors import CrossentError
from crossent.units import Base, log_divisor

Reduction = Literal["none", "sum", "mean"]
Smoothing = Literal["uniform", "off_target"]
InputKind = Literal["logits", "log_probs", "probs"]
Implementation = Literal["auto", "reference", "fused"]

_PROBS_HINT = ' (pass input_kind="logits" for raw scores)'


@dataclass(frozen=True)
class MulticlassInputs:
    """Validated multi-class arguments in the kernels' layout."""

    scores: torch.Tensor  # (M, C), class dim last
    target: torch.Tensor  # (M,) int64 indices or (M, C) probabilities
    weight: torch.Tensor | None  # (C,)
    num_classes: int
    label_smoothing: float
    divisor: float
    eps: float
    out_shape: tuple[int, ...]  # shape of the "none" result: (N, d1, ...) or () unbatched


@dataclass(frozen=True)
class BinaryInputs:
    """Validated binary arguments (element-wise, no reshaping)."""

    target: torch.Tensor  # floating, input's shape
    label_smoothing: float
    divisor: float
    eps: float


def _check_common(
    input: torch.Tensor, reduction: object, label_smoothing: object, base: Base, eps: object
) -> tuple[float, float, float]:
    _checks.check_floating(input, "input")
    _checks.check_reduction(reduction)
    smoothing_value = _checks.check_label_smoothing(label_smoothing)
    divisor = log_divisor(base)
    eps_value = _checks.check_eps(eps, input.dtype)
    return smoothing_value, divisor, eps_value


def _check_ignore_index(ignore_index: object) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise CrossentError(f"ignore_index = {ignore_index!r} must be an integer")
    return ignore_index


def prepare_multiclass(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    smoothing: str,
    input_kind: str,
    base: Base,
    eps: float | None,
) -> MulticlassInputs:
    """Check every multi-class argument and reshape to ``(M, C)``; raise CrossentError if bad.

    Value checks by ``input_kind``: logits and log-probabilities must not hold NaN or ``+inf``
    (``-inf`` is allowed, meaning probability 0, but not in every class of a row);
    log-probabilities must be <= 1e-4; probabilities must lie in [0, 1] with rows summing to 1
    within :func:`crossent._validation.tensors.probability_tolerance`. Index targets must lie in
    [0, C) or equal ``ignore_index``; probability targets (one-hot or soft) must be non-negative
    with rows summing to 1 within the same tolerance.
    """
    smoothing_value, divisor, eps_value = _check_common(
        input, reduction, label_smoothing, base, eps
    )
    _checks.check_choice(smoothing, "smoothing", ("uniform", "off_target"))
    _checks.check_choice(input_kind, "input_kind", ("logits", "log_probs", "probs"))
    ignore = _check_ignore_index(ignore_index)
    _checks.check_tensor(target, "target")
    if input.dim() == 0:
        raise CrossentError("input is a scalar; expected (N, C), (N, C, d1, ...) or (C,)")
    unbatched = input.dim() == 1
    if unbatched:  # (C,) with a () index target or a (C,) probability target
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    num_classes = input.shape[1]
    if num_classes == 0:
        raise CrossentError(f"input has shape {tuple(input.shape)}: zero classes (C = 0)")
    kind = _checks.check_target_shape(input, target)
    _checks.check_same_device(target, "target", input)

    if input_kind == "probs":
        _checks.check_probabilities(input, "input", class_dim=1, hint=_PROBS_HINT)
    else:
        if input_kind == "log_probs":
            has_neg_inf = _checks.check_log_probabilities(input, "input")
        else:
            has_neg_inf = _checks.check_finite(input, "input", allow_neg_inf=True)
        if has_neg_inf:
            _checks.check_rows_not_all_neg_inf(input, "input", class_dim=1)

    if kind == "index":
        _checks.check_index_target(target, num_classes, ignore)
    else:
        if not target.is_floating_point():
            if target.is_complex():
                raise CrossentError(f"target has dtype {target.dtype}, expected real numbers")
            target = target.to(input.dtype if input.dtype == torch.float64 else torch.float32)
        _checks.check_probabilities(target, "target", class_dim=1)
        if ignore != -100:  # as PyTorch: ignoring needs class indices
            raise CrossentError(
                f"ignore_index = {ignore} applies to class-index targets only, but target "
                "holds class probabilities (leave ignore_index at -100)"
            )

    if weight is not None:
        _checks.check_class_weight(weight, num_classes, input)
    if smoothing == "off_target" and smoothing_value > 0 and num_classes < 2:
        raise CrossentError(
            f'label_smoothing = {label_smoothing} with smoothing="off_target" needs at least '
            "2 classes (C = 1): there is no other class to move the mass to"
        )

    out_shape: tuple[int, ...] = (
        () if unbatched else (input.shape[0], *input.shape[2:])
    )
    if input.dim() > 2:
        scores = input.movedim(1, -1).reshape(-1, num_classes)  # (M, C), class dim last
        if kind == "probs":
            target = target.movedim(1, -1).reshape(-1, num_classes)  # (M, C)
        else:
            target = target.reshape(-1)  # (M,)
    else:
        scores = input  # (N, C)
    if kind == "index":
        target = target.to(torch.int64)
    return MulticlassInputs(
        scores=scores,
        target=target,
        weight=weight,
        num_classes=num_classes,
        label_smoothing=smoothing_value,
        divisor=divisor,
        eps=eps_value,
        out_shape=out_shape,
    )


def restore_shape(loss: torch.Tensor, prepared: MulticlassInputs) -> torch.Tensor:
    """Reshape a ``(M,)`` per-element loss back to ``(N, d1, ...)``; scalars pass through."""
    if loss.dim() == 1:
        return loss.reshape(prepared.out_shape)
    return loss


def _check_broadcast_weight(
    weight: torch.Tensor | None, name: str, input: torch.Tensor
) -> None:
    """A non-negative, finite, floating weight that broadcasts to ``input``'s shape."""
    if weight is None:
        return
    _checks.check_floating(weight, name)
    _checks.check_same_device(weight, name, input)
    try:
        shape = torch.broadcast_shapes(weight.shape, input.shape)
    except RuntimeError:
        shape = None
    if shape != input.shape:
        raise CrossentError(
            f"{name} has shape {tuple(weight.shape)}, which does not broadcast to input's "
            f"shape {tuple(input.shape)}"
        )
    _checks.check_finite(weight, name)
    data = weight.detach()
    if data.numel() and float(data.min()) < 0:
        position = _checks.first_true(data < 0)
        raise CrossentError(
            f"{_checks.format_index(name, position)} = {float(data[position]):g} is negative; "
            "weights must be >= 0"
        )


def prepare_binary(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None,
    pos_weight: torch.Tensor | None,
    reduction: str,
    label_smoothing: float,
    input_kind: str,
    base: Base,
    eps: float | None,
) -> BinaryInputs:
    """Check every binary argument; raise CrossentError if bad.

    Logits may be ``±inf`` (never NaN); probabilities and targets must lie in [0, 1];
    ``target`` must have ``input``'s shape (integer and bool targets are converted).
    """
    smoothing_value, divisor, eps_value = _check_common(
        input, reduction, label_smoothing, base, eps
    )
    _checks.check_choice(input_kind, "input_kind", ("logits", "probs"))
    _checks.check_tensor(target, "target")
    if target.shape != input.shape:
        raise CrossentError(
            f"target has shape {tuple(target.shape)}, but input has shape "
            f"{tuple(input.shape)}: binary targets need the input's shape"
        )
    _checks.check_same_device(target, "target", input)
    if input_kind == "logits":
        _checks.check_not_nan(input, "input")
    else:
        _checks.check_unit_range(input, "input", hint=_PROBS_HINT)
    if target.is_complex():
        raise CrossentError(f"target has dtype {target.dtype}, expected real numbers")
    if not target.is_floating_point():
        target = target.to(input.dtype if input.dtype == torch.float64 else torch.float32)
    _checks.check_unit_range(target, "target")
    _check_broadcast_weight(weight, "weight", input)
    _check_broadcast_weight(pos_weight, "pos_weight", input)
    return BinaryInputs(
        target=target, label_smoothing=smoothing_value, divisor=divisor, eps=eps_value
    )


def check_alpha(
    alpha: float | torch.Tensor | None, num_classes: int, input: torch.Tensor
) -> float | torch.Tensor | None:
    """Multi-class focal ``alpha``: None, a finite number >= 0, or a ``(C,)`` weight tensor."""
    if alpha is None:
        return None
    if isinstance(alpha, torch.Tensor):
        return _checks.check_class_weight(alpha, num_classes, input, name="alpha")
    return _checks.check_nonnegative_number(alpha, "alpha")
