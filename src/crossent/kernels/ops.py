"""The fused cross-entropy kernels as PyTorch operators, for eager mode and ``torch.compile``.

``crossent::fused_cross_entropy`` is a :func:`torch.library.custom_op` with a fake (meta)
implementation and a registered autograd formula, so ``torch.compile(fullgraph=True)`` treats
the numba kernel as one opaque node whose output shapes it knows. The forward computes the loss
and, in the same sweep, the gradient of the reduced loss (a ``(M, C)`` buffer); the backward
only multiplies that buffer by the incoming gradient.

``inplace=True`` (the gradient overwrites the logits) mutates its input and hands the buffer to
autograd without a copy, which an operator with a functional schema cannot express: it runs as
a plain :class:`torch.autograd.Function` in eager mode (as does the Triton kernel), and as the
custom op under compile. All call :func:`fused_forward`.
"""

from __future__ import annotations

from typing import Any

import torch

from crossent.kernels import cpu, rules

RowKernel = rules.RowKernel


def fused_forward(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    grad_buffer: torch.Tensor,
    options: dict[str, Any],
    row_kernel: RowKernel = cpu.row_kernel,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run a fused row kernel and reduce: ``(loss, lse, status)``, the gradient of the reduced
    loss in ``grad_buffer`` (which may be ``logits``).

    ``options``: ignore_index, label_smoothing, smoothing, reduction, divisor, z_loss,
    softcap, check, need_lse. ``loss`` is ``(M,)`` for "none", else a scalar, in the logits'
    dtype; ``lse`` is ``(M,)`` in the logits' dtype; ``status`` is ``(M,)`` int8 (see
    :class:`crossent.kernels.cpu.RowResult`).
    """
    reduction = options["reduction"]
    divisor = options["divisor"]
    on_mass, off_mass = rules.smoothing_coefficients(
        logits.shape[1], options["label_smoothing"], options["smoothing"]
    )
    denominator = (
        float(rules.mean_denominator(target, weight, options["ignore_index"]))
        if reduction == "mean" else 1.0
    )
    row_loss, lse, status = row_kernel(logits, target, grad_buffer, rules.RowOptions(
        weight, ignore_index=options["ignore_index"], on_mass=on_mass, off_mass=off_mass,
        grad_scale=rules.gradient_scale(reduction, denominator, divisor),
        z_loss=options["z_loss"], softcap=options["softcap"], check=options["check"],
        need_lse=options["need_lse"],
    ))
    loss = rules.reduce_rows(row_loss.double(), reduction, denominator, divisor)
    return loss.to(logits.dtype), lse.to(logits.dtype), status


def rescaled_gradient(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
    """The backward of a fused forward: its gradient buffer times the incoming gradient.

    Eager: the buffer is rescaled in place (skipped when the incoming gradient is exactly 1)
    and handed over (ctx drops it), so there is one backward per forward; a second one is a
    clear error. Under compile the product is functional and unconditional.
    """
    buffer = ctx.grad_buffer
    if buffer is None:
        raise RuntimeError(
            "the fused cross-entropy gradient buffer was already used by an earlier "
            "backward; use implementation='reference' to backpropagate twice"
        )
    ctx.grad_buffer = None
    scale = grad_output.to(buffer.dtype)
    if ctx.reduction == "none":
        scale = scale.unsqueeze(1)
    if torch.compiler.is_compiling():
        return buffer * scale
    if ctx.reduction == "none" or bool(scale != 1):
        buffer.mul_(scale)
    return buffer


_OPTION_NAMES = (
    "ignore_index", "label_smoothing", "smoothing", "reduction", "divisor", "z_loss", "softcap",
    "check", "need_lse",
)


@torch.library.custom_op("crossent::fused_cross_entropy", mutates_args=())
def _fused_op(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    smoothing: str,
    reduction: str,
    divisor: float,
    z_loss: float,
    softcap: float | None,
    check: bool,
    need_lse: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, grad, lse, status)`` of the numba kernel (see :func:`fused_forward`)."""
    options = dict(zip(_OPTION_NAMES, (
        ignore_index, label_smoothing, smoothing, reduction, divisor, z_loss, softcap, check,
        need_lse,
    ), strict=True))
    grad = torch.empty_like(logits)
    loss, lse, status = fused_forward(logits, target, weight, grad, options)
    return loss, grad, lse, status


@_fused_op.register_fake
def _fused_fake(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int,
    label_smoothing: float, smoothing: str, reduction: str, *rest: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = logits.shape[0]
    loss = logits.new_empty((rows,) if reduction == "none" else ())
    status = logits.new_empty(rows, dtype=torch.int8)
    return loss, torch.empty_like(logits), logits.new_empty(rows), status


def _fused_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
    # no zero gradient for the (M, C) buffer output, which nobody differentiates
    ctx.set_materialize_grads(False)
    ctx.reduction = inputs[6]
    ctx.grad_buffer = output[1].detach()  # no reference cycle through the output's grad_fn


def _fused_backward(ctx: Any, grad_loss: torch.Tensor, *unused: Any) -> tuple[Any, ...]:
    return (rescaled_gradient(ctx, grad_loss),) + (None,) * 11


_fused_op.register_autograd(_fused_backward, setup_context=_fused_setup)


class _EagerFusedCrossEntropy(torch.autograd.Function):
    """Eager mode, any row kernel; with ``inplace`` the gradient overwrites the logits."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        options: dict[str, Any],
        row_kernel: RowKernel,
        inplace: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # in place: a new tensor object on the logits' storage, which autograd adopts as .grad
        # without a copy
        buffer = logits.detach() if inplace else torch.empty_like(logits)
        loss, lse, status = fused_forward(logits, target, weight, buffer, options, row_kernel)
        ctx.reduction = options["reduction"]
        ctx.grad_buffer = buffer if ctx.needs_input_grad[0] else None
        ctx.mark_non_differentiable(lse, status)
        return loss, lse, status

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor, *unused: Any) -> tuple[Any, ...]:  # type: ignore[override]
        return rescaled_gradient(ctx, grad_output), None, None, None, None, None


def _options(
    ignore_index: int, label_smoothing: float, smoothing: str, reduction: str, divisor: float,
    z_loss: float, softcap: float | None, check: bool, need_lse: bool,
) -> dict[str, Any]:
    """The options of :func:`fused_forward`, typed as the operator's schema wants them."""
    return {
        "ignore_index": int(ignore_index), "label_smoothing": float(label_smoothing),
        "smoothing": smoothing, "reduction": reduction, "divisor": float(divisor),
        "z_loss": float(z_loss), "softcap": None if softcap is None else float(softcap),
        "check": bool(check), "need_lse": bool(need_lse),
    }


def eager_fused_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None,
    inplace: bool, row_kernel: RowKernel, z_loss: float = 0.0, softcap: float | None = None,
    check: bool = False, need_lse: bool = False, **rules_options: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`fused_cross_entropy` through a plain autograd function and any row kernel (the
    Triton one on CUDA)."""
    options = _options(z_loss=z_loss, softcap=softcap, check=check, need_lse=need_lse,
                       **rules_options)
    result: tuple[torch.Tensor, torch.Tensor, torch.Tensor] = _EagerFusedCrossEntropy.apply(
        logits, target, weight, options, row_kernel, inplace
    )
    return result


def fused_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    smoothing: rules.Smoothing,
    reduction: rules.Reduction,
    divisor: float,
    inplace: bool,
    z_loss: float = 0.0,
    softcap: float | None = None,
    check: bool = False,
    need_lse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused softmax cross-entropy on CPU (numba): ``(loss, lse, status)``.

    Args:
        logits: (M, C) float32/float64, contiguous, class dimension last.
        target: (M,) int64 class indices, or (M, C) class probabilities of ``logits``' dtype.
        weight: (C,) class weights of ``logits``' dtype, or None.
        ignore_index: rows whose index target equals it contribute 0 (index targets only).
        label_smoothing: ε in [0, 1]; ``smoothing`` says where ε goes ("uniform" over all C
            classes, PyTorch's convention, or "off_target" over the other C - 1).
        reduction: "none", "sum" or "mean" (:func:`crossent.kernels.rules.reduce_rows`).
        divisor: ln(base); the loss and its gradient are divided by it.
        inplace: reuse ``logits``' storage for the gradient. This *consumes the input*: after
            the call ``logits`` holds the gradient, not the logits, and must not be used again
            (nor may it have been saved by another autograd op for its backward). Eager only;
            under ``torch.compile`` a separate buffer is used.
        z_loss: coefficient ``c`` of the per-row ``c * lse^2``.
        softcap: ``cap`` of ``z -> cap * tanh(z / cap)``, or None.
        check: flag rows holding NaN or +inf, or -inf in every class, in ``status`` (and leave
            them unwritten) instead of computing them.
        need_lse: also compute the log-sum-exp of ignored rows.

    The loss is ``(M,)`` for "none", else a scalar; ``lse`` (``(M,)``, nats, no gradient) is
    that of the soft-capped logits. The gradient is computed during the forward; backward
    multiplies it by the incoming gradient, so each forward supports one backward.
    """
    if inplace and not torch.compiler.is_compiling():
        return eager_fused_cross_entropy(
            logits, target, weight=weight, inplace=True, row_kernel=cpu.row_kernel,
            ignore_index=ignore_index, label_smoothing=label_smoothing, smoothing=smoothing,
            reduction=reduction, divisor=divisor, z_loss=z_loss, softcap=softcap, check=check,
            need_lse=need_lse,
        )
    options = _options(ignore_index, label_smoothing, smoothing, reduction, divisor, z_loss,
                       softcap, check, need_lse)
    loss, _, lse, status = _fused_op(logits, target, weight, *options.values())
    return loss, lse.detach(), status
