"""Triton kernels: fused softmax cross-entropy and chunked linear + cross-entropy on CUDA.

Imported only when a CUDA tensor reaches a loss (or, for the tests, under Triton's CPU
interpreter ``TRITON_INTERPRET=1``, which runs these kernels on CPU tensors).

One program per row of the (M, C) logits, ``BLOCK`` classes at a time, on the soft-capped
logits ``u = cap tanh(z / cap)`` (``u = z`` without ``SOFTCAP``):

1. an online pass keeps the running maximum ``m`` and ``s = sum exp(u - m)`` (rescaled
   whenever ``m`` grows: log-sum-exp with max shift in one read), together with
   ``sum_c k_c u_c`` and ``W_t = sum_c k_c`` for the target coefficients ``k_c = w_c t_c``
   (terms with ``k_c = 0`` are masked, so a ``-inf`` logit with no target mass adds 0);
2. a second pass writes the gradient of the reduced loss,
   ``scale ((W_t + 2 c lse) softmax_c - k_c) (1 - (u_c / cap)^2)``, to the gradient buffer,
   which may be the logits themselves (``inplace=True``).

The per-row loss is ``W_t lse - sum_c k_c u_c + c lse^2`` (``c`` the z-loss coefficient).
Linear + cross-entropy runs the chunked sweep of :mod:`crossent.kernels.linear_sweep` with
cuBLAS GEMMs and this row kernel.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from crossent.kernels import ops
from crossent.kernels.rules import RowOptions

_MAX_BLOCK = 4096


@triton.jit
def _softcap(z, cap):  # pragma: no cover - compiled by triton
    """``cap tanh(z / cap)`` with ``tanh(x) = 1 - 2 / (exp(2x) + 1)`` (exact at ±inf)."""
    return cap * (1.0 - 2.0 / (tl.exp(2.0 * z / cap) + 1.0))


@triton.jit
def _capped_logits(
    logits_row, cols, valid, cap, ACC: tl.constexpr, SOFTCAP: tl.constexpr
):  # pragma: no cover - compiled by triton
    """A block of the row's logits in ACC, soft-capped with ``SOFTCAP``; ``-inf`` past C."""
    z = tl.load(logits_row + cols, mask=valid, other=float("-inf")).to(ACC)
    if SOFTCAP:
        z = tl.where(valid, _softcap(z, cap), float("-inf"))
    return z


@triton.jit
def _target_coefficients(
    target_row, weight_ptr, cols, valid, label, on_mass, off_mass,
    ACC: tl.constexpr, SOFT: tl.constexpr, USE_WEIGHT: tl.constexpr,
):  # pragma: no cover - compiled by triton
    """``k_c = w_c t_c`` for a block of classes, ``t`` the smoothed target of the row."""
    if SOFT:
        t = tl.load(target_row + cols, mask=valid, other=0.0)
        coef = on_mass * t.to(ACC) + off_mass
    else:
        coef = tl.where(cols == label, on_mass + off_mass, off_mass)
    if USE_WEIGHT:
        coef = coef * tl.load(weight_ptr + cols, mask=valid, other=0.0).to(ACC)
    return coef


@triton.jit
def _cross_entropy_rows(
    logits_ptr, grad_ptr, target_ptr, weight_ptr, loss_ptr, lse_ptr,
    logits_stride, grad_stride, target_stride,
    n_classes, ignore_index, params_ptr,
    SOFT: tl.constexpr, USE_WEIGHT: tl.constexpr, BLOCK: tl.constexpr, ACC: tl.constexpr,
    SOFTCAP: tl.constexpr,
):  # pragma: no cover - compiled by triton
    row = tl.program_id(0).to(tl.int64)
    # (on_mass, off_mass, grad_scale, z_loss, cap) come in a tensor of ACC: float scalar
    # arguments are fp32
    on_mass = tl.load(params_ptr).to(ACC)
    off_mass = tl.load(params_ptr + 1).to(ACC)
    grad_scale = tl.load(params_ptr + 2).to(ACC)
    z_loss = tl.load(params_ptr + 3).to(ACC)
    cap = tl.load(params_ptr + 4).to(ACC)
    logits_row = logits_ptr + row * logits_stride
    grad_row = grad_ptr + row * grad_stride
    keep = 1.0
    label = 0
    if not SOFT:
        label = tl.load(target_ptr + row).to(tl.int32)
        keep = tl.where(label == ignore_index, 0.0, 1.0)
        label = tl.where(label == ignore_index, 0, label)

    # pass 1: online max and sum of exponentials, target-weighted sums; the accumulators are
    # typed scalars of ACC (float64 for float64 logits, else float32) from the first iteration
    zero = tl.sum(tl.zeros([BLOCK], dtype=ACC), 0)
    row_max = zero + float("-inf")
    exp_sum = zero
    coef_logit_sum = zero
    mass = zero
    for start in range(0, n_classes, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        valid = cols < n_classes
        z = _capped_logits(logits_row, cols, valid, cap, ACC, SOFTCAP)
        new_max = tl.maximum(row_max, tl.max(z, 0))
        # exp(-inf - -inf) would be NaN: a block (or prefix) of -inf adds nothing
        rescale = tl.where(row_max == new_max, 1.0, tl.exp(row_max - new_max))
        shifted = tl.where(z == float("-inf"), 0.0, tl.exp(z - new_max))
        exp_sum = exp_sum * rescale + tl.sum(shifted, 0)
        row_max = new_max
        coef = _target_coefficients(
            target_ptr + row * target_stride, weight_ptr, cols, valid, label, on_mass, off_mass,
            ACC, SOFT, USE_WEIGHT,
        )
        coef = tl.where(valid, coef, 0.0)
        coef_logit_sum += tl.sum(coef * tl.where(coef != 0.0, z, 0.0), 0)
        mass += tl.sum(coef, 0)
    lse = row_max + tl.log(exp_sum)
    tl.store(lse_ptr + row, lse)
    tl.store(loss_ptr + row, keep * (mass * lse - coef_logit_sum + z_loss * lse * lse))

    # pass 2: gradient of the reduced loss, in place when grad_ptr == logits_ptr
    row_scale = grad_scale * keep
    prob_mass = mass + 2.0 * z_loss * lse
    for start in range(0, n_classes, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        valid = cols < n_classes
        z = _capped_logits(logits_row, cols, valid, cap, ACC, SOFTCAP)
        prob = tl.exp(z - lse)
        coef = _target_coefficients(
            target_ptr + row * target_stride, weight_ptr, cols, valid, label, on_mass, off_mass,
            ACC, SOFT, USE_WEIGHT,
        )
        grad = row_scale * (prob_mass * prob - coef)
        if SOFTCAP:
            ratio = z / cap
            grad = grad * (1.0 - ratio * ratio)
        tl.store(grad_row + cols, grad.to(grad_ptr.dtype.element_ty), mask=valid)


def row_kernel(
    logits: torch.Tensor, target: torch.Tensor, grad_buffer: torch.Tensor, options: RowOptions
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row ``(loss, lse, status)`` (float64 for float64 logits, else float32); writes
    ``grad_scale * dloss_i/dz_i`` to ``grad_buffer``.

    Same contract (:data:`crossent.kernels.rules.RowKernel`) as
    :func:`crossent.kernels.cpu.row_kernel`; ``grad_buffer`` may be ``logits``. ``check`` is
    not done here (``status`` is all 0): on CUDA the values are checked before the kernel runs.
    The log-sum-exp of every row is computed, so ``need_lse`` changes nothing.
    """
    rows, classes = logits.shape
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    loss = torch.empty(rows, dtype=acc, device=logits.device)
    lse = torch.empty(rows, dtype=acc, device=logits.device)
    status = torch.zeros(rows, dtype=torch.int8, device=logits.device)
    if rows == 0:
        return loss, lse, status
    soft = target.dim() == 2
    weight, softcap = options.weight, options.softcap
    params = torch.tensor(
        [options.on_mass, options.off_mass, options.grad_scale, options.z_loss,
         1.0 if softcap is None else softcap],
        dtype=torch.float64, device=logits.device,
    ).to(acc)
    block = min(_MAX_BLOCK, triton.next_power_of_2(classes))
    _cross_entropy_rows[(rows,)](
        logits, grad_buffer, target, weight if weight is not None else logits, loss, lse,
        logits.stride(0), grad_buffer.stride(0), target.stride(0) if soft else 1,
        classes, int(options.ignore_index), params,
        SOFT=soft, USE_WEIGHT=weight is not None, BLOCK=block,
        ACC=tl.float64 if logits.dtype == torch.float64 else tl.float32,
        SOFTCAP=softcap is not None,
    )
    return loss, lse, status


def triton_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused softmax cross-entropy with Triton: ``(loss, lse, status)``; same contract and
    keywords as :func:`crossent.kernels.ops.fused_cross_entropy` (``inplace=True`` consumes
    ``logits``)."""
    return ops.eager_fused_cross_entropy(
        logits.contiguous(), target.contiguous(), row_kernel=row_kernel, **options
    )
