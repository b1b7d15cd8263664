"""Fused softmax cross-entropy for CPU float32/float64 (numba): loss and gradient in one sweep.

Per row of the (M, C) logits the kernel makes three passes over C numbers that stay in cache:

1. the row maximum ``m`` (log-sum-exp with max shift, so no exponent overflows); with label
   smoothing or soft targets, one more read gathers ``sum_c w_c t_c (m - z_c)`` (terms with
   zero target mass are skipped, so a ``-inf`` logit with no mass contributes exactly 0);
2. ``e_c = exp(z_c - m)`` written to the gradient buffer and summed into ``s``;
3. the buffer is rescaled in place into the gradient of the *reduced* loss,
   ``scale * (W_t * e_c / s - w_c t_c)`` with ``W_t = sum_c w_c t_c``.

The kernels themselves compile with ``fastmath=False``; the row primitives they call
(:mod:`crossent.kernels._numba_math`) use a vectorisable exp and reassociated sums.

The autograd backward then only multiplies that buffer by the incoming gradient, so
forward + backward reads the logits twice from memory and writes them once. With
``inplace=True`` the buffer *is* the logits' storage: the call consumes its input (the logits
hold the gradient afterwards) and needs no extra (M, C) memory.

The target distribution after smoothing is ``t_c = a * y_c + b`` for both smoothing modes
(``y`` one-hot or soft), with ``(a, b) = (1 - eps, eps / C)`` for ``"uniform"`` and
``(1 - eps - eps / (C - 1), eps / (C - 1))`` for ``"off_target"``; :func:`smoothing_coefficients`
computes them. Class weights weight each class term (PyTorch's convention).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from crossent._validation.choices import Reduction, Smoothing

try:  # numba is a dependency, but a broken install must fall back, not crash the import
    from numba import njit, prange

    from crossent.kernels._numba_math import (
        exp_shifted_sum,
        gap_sum,
        row_max,
        scale_shift_into,
        soft_gap_and_mass,
        weighted_gap_sum,
    )

    _NUMBA_IMPORT_ERROR: Exception | None = None
except Exception as error:  # pragma: no cover - exercised only without numba
    _NUMBA_IMPORT_ERROR = error

    def njit(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        def wrap(function: Any) -> Any:
            return function

        return wrap

    prange = range  # type: ignore[misc]


def smoothing_coefficients(
    num_classes: int, label_smoothing: float, smoothing: Smoothing
) -> tuple[float, float]:
    """``(a, b)`` such that the smoothed target is ``t_c = a * y_c + b`` (``y`` one-hot or soft).

    With one class there is nowhere to move mass to, so the target stays ``y`` (``a=1, b=0``).
    """
    eps = float(label_smoothing)
    if eps == 0.0 or num_classes <= 1:
        return 1.0, 0.0
    if smoothing == "uniform":
        return 1.0 - eps, eps / num_classes
    off = eps / (num_classes - 1)
    return 1.0 - eps - off, off


@njit(parallel=True, cache=True, fastmath=False)
def _index_rows(  # pragma: no cover - compiled by numba
    logits, grad, target, weight, use_weight, weight_sum, ignore_index, on_mass, off_mass,
    grad_scale, loss
):
    """Integer targets: per-row loss into ``loss``, scaled gradient into ``grad``.

    ``logits`` and ``grad`` may be the same array (in place): every pass that needs the
    logits runs before the pass that overwrites them.
    """
    rows, classes = logits.shape
    for i in prange(rows):
        label = target[i]
        row = logits[i]
        out = grad[i]
        if label == ignore_index:
            loss[i] = 0.0
            out[:] = 0.0
            continue
        target_logit = float(row[label])
        shift = row_max(row)  # pass 1: max shift for log-sum-exp
        off_loss = 0.0
        if off_mass != 0.0:  # smoothing mass on every class: sum_c w_c (max - z_c)
            off_loss = weighted_gap_sum(row, weight, shift) if use_weight else gap_sum(row, shift)
        total = exp_shifted_sum(row, out, shift)  # pass 2: exp(z - max) into the buffer, summed
        log_total = math.log(total)
        label_weight = weight[label] if use_weight else 1.0
        on_coef = on_mass * label_weight
        mass = off_mass * weight_sum + on_coef  # W_t = sum_c w_c t_c
        row_loss = off_mass * (off_loss + weight_sum * log_total)
        if on_coef != 0.0:
            row_loss += on_coef * (shift + log_total - target_logit)
        loss[i] = row_loss
        # pass 3: gradient of the reduced loss, W_t * softmax - w * t, times the reduction scale
        prob_scale = grad_scale * mass / total
        if off_mass != 0.0:
            off_scale = grad_scale * off_mass
            if use_weight:
                for j in range(classes):
                    out[j] = out[j] * prob_scale - off_scale * weight[j]
            else:
                scale_shift_into(out, prob_scale, off_scale)
        else:
            scale_shift_into(out, prob_scale, 0.0)
        out[label] -= grad_scale * on_coef


@njit(parallel=True, cache=True, fastmath=False)
def _soft_rows(  # pragma: no cover - compiled by numba
    logits, grad, target, weight, use_weight, on_mass, off_mass, grad_scale, loss
):
    """Soft targets ``target`` (M, C): smoothed ``t = a * target + b``, same three passes."""
    rows, classes = logits.shape
    for i in prange(rows):
        row = logits[i]
        out = grad[i]
        target_row = target[i]
        shift = row_max(row)
        gap_loss, mass = soft_gap_and_mass(
            row, target_row, weight, use_weight, on_mass, off_mass, shift
        )
        total = exp_shifted_sum(row, out, shift)
        loss[i] = gap_loss + mass * math.log(total)
        prob_scale = grad_scale * mass / total
        for j in range(classes):
            coef = on_mass * target_row[j] + off_mass
            if use_weight:
                coef *= weight[j]
            out[j] = out[j] * prob_scale - grad_scale * coef


def available() -> bool:
    """True when numba imports and the kernel compiles and runs on a tiny input."""
    global _AVAILABLE
    if _AVAILABLE is None:
        if _NUMBA_IMPORT_ERROR is not None:
            _AVAILABLE = False
        else:
            try:
                probe = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
                loss = fused_cross_entropy(
                    probe, torch.tensor([1]), weight=None, ignore_index=-100,
                    label_smoothing=0.0, smoothing="uniform", reduction="sum", divisor=1.0,
                    inplace=False,
                )
                _AVAILABLE = bool(abs(float(loss) - math.log1p(math.exp(-1.0))) < 1e-12)
            except Exception:
                _AVAILABLE = False
    return _AVAILABLE


_AVAILABLE: bool | None = None


def mean_denominator(
    target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int
) -> float:
    """What ``reduction="mean"`` divides by: sum of the target weights of non-ignored rows
    (index targets; the count when unweighted), or the number of rows (soft targets)."""
    if target.dim() == 2:
        return float(target.shape[0])
    kept = target != ignore_index
    if weight is None:
        return float(kept.sum())
    return float(weight.double()[target[kept]].sum())


def row_losses(
    logits: torch.Tensor,
    target: torch.Tensor,
    grad_buffer: torch.Tensor,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    on_mass: float,
    off_mass: float,
    grad_scale: float,
) -> np.ndarray:
    """The kernel itself: per-row losses in nats (float64), ``grad_scale * dloss_i/dz_i`` rows
    written to ``grad_buffer`` (which may be ``logits``: in place).

    ``(on_mass, off_mass)`` come from :func:`smoothing_coefficients`. All tensors are CPU and
    contiguous with class dimension last; inputs are assumed valid.
    """
    rows, classes = logits.shape
    row_loss = np.empty(rows, dtype=np.float64)
    if rows == 0:
        return row_loss
    use_weight = weight is not None
    # numba needs an array either way; a dummy of the logits' dtype keeps one compiled signature
    weight_np = (
        weight.detach().contiguous().numpy()
        if weight is not None
        else np.ones(1, dtype=logits.detach().numpy().dtype)
    )
    logits_np = logits.detach().numpy()
    grad_np = grad_buffer.detach().numpy()
    if target.dim() == 2:
        _soft_rows(
            logits_np, grad_np, target.detach().numpy(), weight_np, use_weight,
            on_mass, off_mass, grad_scale, row_loss,
        )
    else:
        weight_sum = float(weight.double().sum()) if weight is not None else float(classes)
        _index_rows(
            logits_np, grad_np, target.detach().numpy(), weight_np, use_weight, weight_sum,
            int(ignore_index), on_mass, off_mass, grad_scale, row_loss,
        )
    return row_loss


def reduce_row_losses(
    row_loss: np.ndarray, reduction: Reduction, denominator: float, divisor: float,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Apply the reduction and the log-base divisor to per-row losses in nats."""
    if reduction == "none":
        return torch.from_numpy(row_loss / divisor).to(dtype)
    total = float(row_loss.sum())
    if reduction == "mean":
        # a mean over nothing is 0 (with zero gradient), never 0/0
        total = total / denominator if denominator != 0.0 else 0.0
    return torch.tensor(total / divisor, dtype=dtype)


def gradient_scale(reduction: Reduction, denominator: float, divisor: float) -> float:
    """The factor turning ``dloss_i/dz_i`` (nats) into the gradient of the reduced result."""
    if reduction == "mean":
        return 1.0 / (denominator * divisor) if denominator != 0.0 else 0.0
    return 1.0 / divisor


def loss_and_grad(
    logits: torch.Tensor,
    target: torch.Tensor,
    grad_buffer: torch.Tensor,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    smoothing: Smoothing,
    reduction: Reduction,
    divisor: float,
) -> torch.Tensor:
    """Run the fused kernel: returns the loss (``(M,)`` or ``()``), gradient in ``grad_buffer``.

    ``grad_buffer`` may be ``logits`` itself (in place). For reduction ``"none"`` the buffer
    holds ``d loss_i / d z_i`` per row; otherwise the gradient of the reduced scalar. All tensors
    are CPU and contiguous; inputs are assumed valid (checked by the caller).
    """
    on_mass, off_mass = smoothing_coefficients(logits.shape[1], label_smoothing, smoothing)
    denominator = mean_denominator(target, weight, ignore_index) if reduction == "mean" else 1.0
    row_loss = row_losses(
        logits, target, grad_buffer, weight=weight, ignore_index=ignore_index,
        on_mass=on_mass, off_mass=off_mass,
        grad_scale=gradient_scale(reduction, denominator, divisor),
    )
    return reduce_row_losses(row_loss, reduction, denominator, divisor, logits.dtype)


class _FusedCrossEntropy(torch.autograd.Function):
    """Loss in forward, gradient already computed; backward rescales by the incoming gradient."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        options: dict[str, Any],
    ) -> torch.Tensor:
        inplace = options.pop("inplace")
        needs_grad = ctx.needs_input_grad[0]
        # the kernel always writes a gradient; without inplace it goes to a fresh buffer. In
        # place, a new tensor object on the logits' storage, so that autograd can adopt it as
        # ``.grad`` without a copy
        buffer = logits.detach() if inplace else torch.empty_like(logits)
        loss = loss_and_grad(logits, target, buffer, weight=weight, **options)
        ctx.reduction = options["reduction"]
        ctx.grad_buffer = buffer if needs_grad else None
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        return rescaled_gradient(ctx, grad_output), None, None, None


def rescaled_gradient(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
    """The backward of a fused forward: its gradient buffer times the incoming gradient.

    The buffer is rescaled in place and handed over (ctx drops it), so there is one backward per
    forward; a second one is a clear error.
    """
    buffer = ctx.grad_buffer
    if buffer is None:
        raise RuntimeError(
            "the fused cross-entropy gradient buffer was already used by an earlier "
            "backward; use implementation='reference' to backpropagate twice"
        )
    ctx.grad_buffer = None
    if ctx.reduction == "none":
        buffer.mul_(grad_output.to(buffer.dtype).unsqueeze(1))
    elif bool(grad_output != 1):
        buffer.mul_(grad_output.to(buffer.dtype))
    return buffer


def fused_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    smoothing: Smoothing,
    reduction: Reduction,
    divisor: float,
    inplace: bool,
) -> torch.Tensor:
    """Fused softmax cross-entropy on CPU: ``(M,)`` for ``"none"``, a scalar otherwise.

    Args:
        logits: (M, C) float32/float64, contiguous, class dimension last.
        target: (M,) int64 class indices, or (M, C) class probabilities of ``logits``' dtype.
        weight: (C,) class weights of ``logits``' dtype, or None.
        ignore_index: rows whose index target equals it contribute 0 (index targets only).
        label_smoothing: ε in [0, 1]; ``smoothing`` says where ε goes ("uniform" over all C
            classes, PyTorch's convention, or "off_target" over the other C - 1).
        reduction: "none", "sum" or "mean" (index targets: divided by the sum of the target
            weights of non-ignored rows; soft targets: by M). A mean over nothing is 0.
        divisor: ln(base); the loss and its gradient are divided by it.
        inplace: reuse ``logits``' storage for the gradient. This *consumes the input*: after
            the call ``logits`` holds the gradient, not the logits, and must not be used again
            (nor may it have been saved by another autograd op for its backward).

    The inputs are assumed valid (``crossent.losses`` checks them once). The gradient is
    computed during the forward; backward multiplies it by the incoming gradient in place, so
    each forward supports one backward.
    """
    options: dict[str, Any] = {
        "ignore_index": ignore_index, "label_smoothing": label_smoothing,
        "smoothing": smoothing, "reduction": reduction, "divisor": divisor, "inplace": inplace,
    }
    result: torch.Tensor = _FusedCrossEntropy.apply(logits, target, weight, options)
    return result
