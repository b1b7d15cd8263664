"""Triton kernels: fused softmax cross-entropy and chunked linear + cross-entropy on CUDA.

Imported only when a CUDA tensor reaches a loss (or, for the tests, under Triton's CPU
interpreter ``TRITON_INTERPRET=1``, which runs these kernels on CPU tensors).

One program per row of the (M, C) logits, ``BLOCK`` classes at a time:

1. an online pass keeps the running maximum ``m`` and ``s = sum exp(z - m)`` (rescaled
   whenever ``m`` grows: log-sum-exp with max shift in one read), together with
   ``sum_c k_c z_c`` and ``W_t = sum_c k_c`` for the target coefficients ``k_c = w_c t_c``
   (terms with ``k_c = 0`` are masked, so a ``-inf`` logit with no target mass adds 0);
2. a second pass writes the gradient of the reduced loss, ``scale (W_t softmax_c - k_c)``,
   to the gradient buffer, which may be the logits themselves (``inplace=True``).

The per-row loss is ``W_t lse - sum_c k_c z_c``. Linear + cross-entropy reuses the chunked
sweep of :mod:`crossent.kernels.linear` with cuBLAS GEMMs and this row kernel.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from crossent._validation.choices import Reduction, Smoothing
from crossent.kernels import cpu, linear

_MAX_BLOCK = 4096


@triton.jit
def _cross_entropy_rows(
    logits_ptr, grad_ptr, target_ptr, weight_ptr, loss_ptr,
    logits_stride, grad_stride, target_stride,
    n_classes, ignore_index, params_ptr,
    SOFT: tl.constexpr, USE_WEIGHT: tl.constexpr, BLOCK: tl.constexpr, ACC: tl.constexpr,
):  # pragma: no cover - compiled by triton
    row = tl.program_id(0).to(tl.int64)
    # (on_mass, off_mass, grad_scale) come in a tensor of ACC: float scalar arguments are fp32
    on_mass = tl.load(params_ptr).to(ACC)
    off_mass = tl.load(params_ptr + 1).to(ACC)
    grad_scale = tl.load(params_ptr + 2).to(ACC)
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
        z = tl.load(logits_row + cols, mask=valid, other=float("-inf")).to(ACC)
        new_max = tl.maximum(row_max, tl.max(z, 0))
        # exp(-inf - -inf) would be NaN: a block (or prefix) of -inf adds nothing
        rescale = tl.where(row_max == new_max, 1.0, tl.exp(row_max - new_max))
        shifted = tl.where(z == float("-inf"), 0.0, tl.exp(z - new_max))
        exp_sum = exp_sum * rescale + tl.sum(shifted, 0)
        row_max = new_max
        if SOFT:
            t = tl.load(target_ptr + row * target_stride + cols, mask=valid, other=0.0)
            coef = on_mass * t.to(ACC) + off_mass
        else:
            coef = tl.where(cols == label, on_mass + off_mass, off_mass)
        if USE_WEIGHT:
            coef = coef * tl.load(weight_ptr + cols, mask=valid, other=0.0).to(ACC)
        coef = tl.where(valid, coef, 0.0)
        coef_logit_sum += tl.sum(coef * tl.where(coef != 0.0, z, 0.0), 0)
        mass += tl.sum(coef, 0)
    lse = row_max + tl.log(exp_sum)
    tl.store(loss_ptr + row, keep * (mass * lse - coef_logit_sum))

    # pass 2: gradient of the reduced loss, in place when grad_ptr == logits_ptr
    row_scale = grad_scale * keep
    for start in range(0, n_classes, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        valid = cols < n_classes
        z = tl.load(logits_row + cols, mask=valid, other=float("-inf")).to(ACC)
        prob = tl.exp(z - lse)
        if SOFT:
            t = tl.load(target_ptr + row * target_stride + cols, mask=valid, other=0.0)
            coef = on_mass * t.to(ACC) + off_mass
        else:
            coef = tl.where(cols == label, on_mass + off_mass, off_mass)
        if USE_WEIGHT:
            coef = coef * tl.load(weight_ptr + cols, mask=valid, other=0.0).to(ACC)
        grad = row_scale * (mass * prob - coef)
        tl.store(grad_row + cols, grad.to(grad_ptr.dtype.element_ty), mask=valid)


def row_kernel(
    logits: torch.Tensor,
    target: torch.Tensor,
    grad_buffer: torch.Tensor,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    on_mass: float,
    off_mass: float,
    grad_scale: float,
) -> torch.Tensor:
    """Per-row losses in nats (float64 for float64 logits, else float32); writes
    ``grad_scale * dloss_i/dz_i`` to ``grad_buffer``.

    Same contract as :func:`crossent.kernels.cpu.row_losses`; ``grad_buffer`` may be ``logits``.
    """
    rows, classes = logits.shape
    loss = torch.empty(
        rows, dtype=torch.float64 if logits.dtype == torch.float64 else torch.float32,
        device=logits.device,
    )
    if rows == 0:
        return loss
    soft = target.dim() == 2
    params = torch.tensor(
        [on_mass, off_mass, grad_scale], dtype=torch.float64, device=logits.device
    ).to(loss.dtype)
    block = min(_MAX_BLOCK, triton.next_power_of_2(classes))
    _cross_entropy_rows[(rows,)](
        logits, grad_buffer, target, weight if weight is not None else logits, loss,
        logits.stride(0), grad_buffer.stride(0), target.stride(0) if soft else 1,
        classes, int(ignore_index), params,
        SOFT=soft, USE_WEIGHT=weight is not None, BLOCK=block,
        ACC=tl.float64 if logits.dtype == torch.float64 else tl.float32,
    )
    return loss


class _TritonCrossEntropy(torch.autograd.Function):
    """Loss and gradient in forward; backward multiplies the stored gradient in place."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        options: dict[str, Any],
    ) -> torch.Tensor:
        reduction = options["reduction"]
        divisor = options["divisor"]
        on_mass, off_mass = cpu.smoothing_coefficients(
            logits.shape[1], options["label_smoothing"], options["smoothing"]
        )
        denominator = (
            cpu.mean_denominator(target, weight, options["ignore_index"])
            if reduction == "mean" else 1.0
        )
        # in place: a new tensor object on the logits' storage, adoptable as .grad without copy
        buffer = logits.detach() if options["inplace"] else torch.empty_like(logits)
        row_loss = row_kernel(
            logits, target, buffer, weight=weight, ignore_index=options["ignore_index"],
            on_mass=on_mass, off_mass=off_mass,
            grad_scale=cpu.gradient_scale(reduction, denominator, divisor),
        )
        ctx.reduction = reduction
        ctx.grad_buffer = buffer if ctx.needs_input_grad[0] else None
        return linear.reduce_rows(
            row_loss.double(), reduction, denominator, divisor, logits.dtype
        )

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        return cpu.rescaled_gradient(ctx, grad_output), None, None, None


def triton_cross_entropy(
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
    """Fused softmax cross-entropy with Triton; same contract as
    :func:`crossent.kernels.cpu.fused_cross_entropy` (``inplace=True`` consumes ``logits``)."""
    options: dict[str, Any] = {
        "ignore_index": ignore_index, "label_smoothing": label_smoothing,
        "smoothing": smoothing, "reduction": reduction, "divisor": divisor, "inplace": inplace,
    }
    result: torch.Tensor = _TritonCrossEntropy.apply(
        logits.contiguous(), target.contiguous(), weight, options
    )
    return result


def triton_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    **options: Any,
) -> torch.Tensor:
    """Chunked linear + cross-entropy with cuBLAS GEMMs and the Triton row kernel (validated
    2-d inputs; see :func:`crossent.linear_cross_entropy`)."""
    return linear.chunked_linear_cross_entropy(
        hidden, weight, target, **options, row_kernel=row_kernel
    )
