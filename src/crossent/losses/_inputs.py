"""Validate and lay out the arguments of the loss functions, once, before any computing.

:func:`prepare_multiclass` checks every argument of :func:`crossent.cross_entropy` /
:func:`crossent.focal_loss` and reshapes ``(N, C, d1, ...)`` input to the ``(M, C)``
class-last layout the kernels take; :func:`restore_shape` undoes it for ``reduction="none"``.
:func:`prepare_binary` does the same for the element-wise binary losses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import torch

from crossent._validation import rules
from crossent._validation import tensors as _checks
from crossent._validation.choices import (
    BinaryInputKind,
    InputKind,
    Reduction,
    Smoothing,
    check_choice,
)
from crossent._validation.numbers import check_int, check_number
from crossent.errors import CrossentError
from crossent.units import Base, log_divisor

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
    unchecked: torch.Tensor | None = None  # (M,) bool: out-of-range index (validation off)


@dataclass(frozen=True)
class BinaryInputs:
    """Validated binary arguments (element-wise, no reshaping)."""

    target: torch.Tensor  # floating, input's shape
    label_smoothing: float
    divisor: float
    eps: float


def check_options(reduction: object, label_smoothing: object, base: Base) -> tuple[float, float]:
    """The options every loss shares: ``(label_smoothing, divisor)`` once checked."""
    check_choice(reduction, "reduction", Reduction)
    smoothing_value = check_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    return smoothing_value, log_divisor(base)


def _check_common(
    input: torch.Tensor, reduction: object, label_smoothing: object, base: Base, eps: object
) -> tuple[float, float, float]:
    _checks.check_floating(input, "input")
    smoothing_value, divisor = check_options(reduction, label_smoothing, base)
    eps_value = _checks.check_eps(eps, input.dtype)
    return smoothing_value, divisor, eps_value


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
    validate: bool = True,
    check_input: bool = True,
) -> MulticlassInputs:
    """Check every multi-class argument and reshape to ``(M, C)``; raise CrossentError if bad.

    Types, shapes, dtypes, devices and options are always checked (they read no data). With
    ``validate`` the values are checked too, by ``input_kind``: logits and log-probabilities
    must not hold NaN or ``+inf`` (``-inf`` is allowed, meaning probability 0, but not in
    every class of a row); log-probabilities must be <= 1e-4; probabilities must lie in
    [0, 1] with rows summing to 1 within :func:`crossent._validation.masks.sum_tolerance`.
    Index targets must lie in [0, C) or equal ``ignore_index``; probability targets (one-hot
    or soft) must be non-negative with rows summing to 1 within the same tolerance.
    ``check_input=False`` leaves the input's values to a kernel that checks them during its
    own sweep (the CPU fused cross-entropy).
    """
    smoothing_value, divisor, eps_value = _check_common(
        input, reduction, label_smoothing, base, eps
    )
    check_choice(smoothing, "smoothing", Smoothing)
    check_choice(input_kind, "input_kind", InputKind)
    ignore = check_int(ignore_index, "ignore_index")
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

    if validate and check_input:
        check_multiclass_input_values(input, input_kind)
    target = _check_multiclass_target(target, kind, input, ignore, validate)
    if weight is not None:
        _checks.check_class_weight(weight, num_classes, input, validate=validate)
    if smoothing == "off_target" and smoothing_value > 0 and num_classes < 2:
        raise CrossentError(
            f'label_smoothing = {label_smoothing} with smoothing="off_target" needs at least '
            "2 classes (C = 1): there is no other class to move the mass to"
        )

    out_shape: tuple[int, ...] = () if unbatched else (input.shape[0], *input.shape[2:])
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
    unchecked = None
    if kind == "index" and not validate:
        target, unchecked = guard_index_target(target, num_classes, ignore)
    return MulticlassInputs(
        scores=scores,
        target=target,
        weight=weight,
        num_classes=num_classes,
        label_smoothing=smoothing_value,
        divisor=divisor,
        eps=eps_value,
        out_shape=out_shape,
        unchecked=unchecked,
    )


def _check_multiclass_target(
    target: torch.Tensor, kind: str, input: torch.Tensor, ignore: int, validate: bool
) -> torch.Tensor:
    """Index targets: an integer dtype (and, with ``validate``, indices in [0, C));
    probability targets: converted to floating (and, with ``validate``, rows on the simplex)."""
    if kind == "index":
        _checks.check_index_dtype(target)
        if validate:
            _checks.check_index_values(target, input.shape[1], ignore)
        return target
    if not target.is_floating_point():
        if target.is_complex():
            raise CrossentError(f"target has dtype {target.dtype}, expected real numbers")
        target = target.to(input.dtype if input.dtype == torch.float64 else torch.float32)
    if validate:
        rules.check_probabilities(target, "target", class_dim=1)
    if ignore != -100:  # as PyTorch: ignoring needs class indices
        raise CrossentError(
            f"ignore_index = {ignore} applies to class-index targets only, but target "
            "holds class probabilities (leave ignore_index at -100)"
        )
    return target


def check_multiclass_input_values(input: torch.Tensor, input_kind: str) -> None:
    """The value rules of an ``(N, C, ...)`` input of ``input_kind`` (one or two passes)."""
    if input_kind == "probs":
        rules.check_probabilities(input, "input", class_dim=1, hint=_PROBS_HINT)
        return
    if input_kind == "log_probs":
        has_neg_inf = _checks.check_log_probabilities(input, "input")
    else:
        has_neg_inf = rules.check_finite(input, "input", allow_neg_inf=True)
    if has_neg_inf:
        rules.check_rows_not_all_neg_inf(input, "input", class_dim=1)


def guard_index_target(
    target: torch.Tensor, num_classes: int, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unvalidated class indices made safe to index with, without reading them on the host.

    Returns the target with every index outside [0, C) (and not ``ignore_index``) replaced by
    ``ignore_index``, so no kernel reads or writes outside a row, and the mask of those
    entries, which :func:`poison` turns into a NaN loss: a bad index is never silently
    ignored. Two element-wise passes over the (M,) target, no host synchronisation.
    """
    unchecked = (target < 0) | (target >= num_classes)
    unchecked &= target != ignore_index
    return torch.where(unchecked, ignore_index, target), unchecked


def poison(loss: torch.Tensor, unchecked: torch.Tensor | None) -> torch.Tensor:
    """NaN where :func:`guard_index_target` found a bad index: the per-row loss of that row
    (``reduction="none"``), or the whole reduced loss; ``loss`` itself when none was."""
    if unchecked is None:
        return loss
    if loss.dim() == 0:
        return torch.where(unchecked.any(), torch.nan, loss)
    return torch.where(unchecked.reshape(loss.shape), torch.nan, loss)


def restore_shape(loss: torch.Tensor, prepared: MulticlassInputs) -> torch.Tensor:
    """Reshape a ``(M,)`` per-element loss back to ``(N, d1, ...)``; scalars pass through.

    With validation off, a loss over an out-of-range index becomes NaN (:func:`poison`).
    """
    loss = poison(loss, prepared.unchecked)
    if loss.dim() == 1:
        return loss.reshape(prepared.out_shape)
    return loss


def _check_broadcast_weight(
    weight: torch.Tensor | None, name: str, input: torch.Tensor, validate: bool
) -> None:
    """A floating weight that broadcasts to ``input``'s shape; with ``validate`` also
    finite and non-negative."""
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
    if validate:
        rules.check_nonnegative(weight, name, hint="; weights cannot be negative")


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
    validate: bool = True,
) -> BinaryInputs:
    """Check every binary argument; raise CrossentError if bad.

    ``target`` must have ``input``'s shape (integer and bool targets are converted). With
    ``validate`` the values are checked too: logits may be ``±inf`` (never NaN);
    probabilities and targets must lie in [0, 1]; weights must be finite and >= 0.
    """
    smoothing_value, divisor, eps_value = _check_common(
        input, reduction, label_smoothing, base, eps
    )
    check_choice(input_kind, "input_kind", BinaryInputKind)
    _checks.check_tensor(target, "target")
    if target.shape != input.shape:
        raise CrossentError(
            f"target has shape {tuple(target.shape)}, but input has shape "
            f"{tuple(input.shape)}: binary targets need the input's shape"
        )
    _checks.check_same_device(target, "target", input)
    if target.is_complex():
        raise CrossentError(f"target has dtype {target.dtype}, expected real numbers")
    if not target.is_floating_point():
        target = target.to(input.dtype if input.dtype == torch.float64 else torch.float32)
    if validate:
        if input_kind == "logits":
            rules.check_not_nan(input, "input")
        else:
            rules.check_unit_interval(input, "input", hint=_PROBS_HINT)
        rules.check_unit_interval(target, "target")
    _check_broadcast_weight(weight, "weight", input, validate)
    _check_broadcast_weight(pos_weight, "pos_weight", input, validate)
    return BinaryInputs(
        target=target, label_smoothing=smoothing_value, divisor=divisor, eps=eps_value
    )


def check_alpha(
    alpha: float | torch.Tensor | None, num_classes: int, input: torch.Tensor, validate: bool
) -> float | torch.Tensor | None:
    """Multi-class focal ``alpha``: None, a finite number >= 0, or a ``(C,)`` weight tensor."""
    if alpha is None:
        return None
    if isinstance(alpha, torch.Tensor):
        return _checks.check_class_weight(
            alpha, num_classes, input, name="alpha", validate=validate
        )
    return check_number(alpha, "alpha", low=0.0)


P = ParamSpec("P")
R = TypeVar("R")


def autocast_to_float32(loss: Callable[P, R]) -> Callable[P, R]:
    """Run ``loss`` as PyTorch runs its losses under ``torch.autocast``: in float32.

    Where autocast is on for the device of the first tensor argument, every float16/bfloat16
    tensor argument is cast to float32 (float64 stays, as in autocast's float32 policy) and
    the loss runs with autocast off, so it computes and returns float32; gradients flow back
    to the low-precision tensors in their own dtype. Outside autocast nothing changes.
    """

    @functools.wraps(loss)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if first is None or not torch.is_autocast_enabled(first.device.type):
            return loss(*args, **kwargs)
        cast_args = [_to_float32(value) for value in args]
        cast_kwargs = {key: _to_float32(value) for key, value in kwargs.items()}
        with torch.autocast(first.device.type, enabled=False):
            return loss(*cast_args, **cast_kwargs)  # type: ignore[arg-type]

    return wrapper


def _to_float32(value: object) -> object:
    if isinstance(value, torch.Tensor) and value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    return value
