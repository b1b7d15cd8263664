"""Linear + cross-entropy without the (N, V) logits: the operator, its autograd and entry point.

For a large output layer (a vocabulary, a catalogue of a million videos) the logits are by far
the largest tensor of a training step: N = 8192 rows by V = 100,000 classes is 3 GiB in
float32, and PyTorch eager keeps several such tensors alive. ``crossent::linear_cross_entropy``
(a :func:`torch.library.custom_op` with a fake implementation and a registered autograd
formula, so ``torch.compile(fullgraph=True)`` can trace through it) computes the loss and all
gradients in its forward, one chunk at a time:

* the row-chunked sweep (:mod:`crossent.kernels.linear_sweep`) for float32/float64 weights and
  on CUDA: three matrix products in all, one chunk of logits at a time;
* the class-blocked sweep (:mod:`crossent.kernels.linear_blocked`) for a float16/bfloat16
  weight on the CPU: the weight is upcast one block of classes at a time, never whole.

The autograd backward only multiplies the stored gradients by the incoming (scalar) gradient.
With ``reduction="none"`` the incoming gradient is one number per row and cannot be applied
afterwards, so there ``crossent::linear_cross_entropy_backward`` makes a second sweep.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from crossent._validation.choices import Reduction, Smoothing
from crossent.kernels import cpu, linear_blocked, linear_sweep, rules
from crossent.kernels.linear_sweep import Sweep, SweepSpec, default_chunk_rows

LOW_PRECISION = (torch.float16, torch.bfloat16)

_OPTION_NAMES = (
    "ignore_index", "label_smoothing", "smoothing", "reduction", "divisor", "inv_temperature",
    "z_loss", "softcap", "chunk_rows", "class_blocked", "row_kernel",
)


def _row_kernel(name: str) -> linear_sweep.RowKernel:
    if name == "triton":  # imported only when a CUDA tensor gets here
        kernel: linear_sweep.RowKernel = importlib.import_module(
            "crossent.kernels.cuda").row_kernel
        return kernel
    return cpu.row_kernel


def _sweep(
    hidden: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor | None,
    target: torch.Tensor, class_weight: torch.Tensor | None, options: dict[str, Any],
    row_grad: torch.Tensor | None, need: tuple[bool, bool, bool],
) -> tuple[Sweep, float]:
    """Run the sweep ``options`` ask for; returns it and the mean denominator."""
    on_mass, off_mass = rules.smoothing_coefficients(
        weight.shape[0], options["label_smoothing"], options["smoothing"]
    )
    reduction = options["reduction"]
    denominator = (
        float(rules.mean_denominator(target, class_weight, options["ignore_index"]))
        if reduction == "mean" else 1.0
    )
    spec = SweepSpec(
        class_weight=class_weight, ignore_index=options["ignore_index"], on_mass=on_mass,
        off_mass=off_mass, inv_temperature=options["inv_temperature"],
        z_loss=options["z_loss"], softcap=options["softcap"],
        chunk_rows=options["chunk_rows"] or None, row_kernel=_row_kernel(options["row_kernel"]),
    )
    sweep = linear_blocked.class_sweep if options["class_blocked"] else linear_sweep.row_sweep
    # reduction "none": the per-row incoming gradient arrives in backward, as ``row_grad``
    grad_scale = (rules.gradient_scale(reduction, denominator, options["divisor"])
                  if row_grad is None else 1.0 / options["divisor"])
    return sweep(hidden, weight, shift, target, spec, grad_scale=grad_scale, row_grad=row_grad,
                 need=need), denominator


def _or_empty(tensor: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """An operator cannot return None: a gradient not asked for is an empty tensor."""
    return like.new_empty(0) if tensor is None else tensor


@torch.library.custom_op("crossent::linear_cross_entropy", mutates_args=())
def _linear_op(
    hidden: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor | None,
    target: torch.Tensor, class_weight: torch.Tensor | None, ignore_index: int,
    label_smoothing: float, smoothing: str, reduction: str, divisor: float,
    inv_temperature: float, z_loss: float, softcap: float | None, chunk_rows: int,
    class_blocked: bool, row_kernel: str, need_hidden: bool, need_weight: bool,
    need_shift: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, lse, grad_hidden, grad_weight, grad_shift)`` of the reduced loss."""
    options = dict(zip(_OPTION_NAMES, (
        ignore_index, label_smoothing, smoothing, reduction, divisor, inv_temperature, z_loss,
        softcap, chunk_rows, class_blocked, row_kernel,
    ), strict=True))
    (row_loss, lse, *grads), denominator = _sweep(
        hidden, weight, shift, target, class_weight, options, None,
        (need_hidden, need_weight, need_shift),
    )
    loss = rules.reduce_rows(row_loss, reduction, denominator, divisor).to(hidden.dtype)
    return (loss, lse.to(hidden.dtype), *(_or_empty(g, hidden) for g in grads))  # type: ignore[return-value]


@_linear_op.register_fake
def _linear_fake(
    hidden: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor | None,
    target: torch.Tensor, class_weight: torch.Tensor | None, ignore_index: int,
    label_smoothing: float, smoothing: str, reduction: str, *rest: Any,
) -> tuple[torch.Tensor, ...]:
    need_hidden, need_weight, need_shift = rest[-3:]
    rows = hidden.shape[0]
    loss = hidden.new_empty((rows,) if reduction == "none" else ())
    return (
        loss, hidden.new_empty(rows),
        torch.empty_like(hidden) if need_hidden else hidden.new_empty(0),
        torch.empty_like(weight) if need_weight else hidden.new_empty(0),
        hidden.new_empty(weight.shape[0]) if need_shift else hidden.new_empty(0),
    )


@torch.library.custom_op("crossent::linear_cross_entropy_backward", mutates_args=())
def _linear_backward_op(
    hidden: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor | None,
    target: torch.Tensor, class_weight: torch.Tensor | None, row_grad: torch.Tensor,
    ignore_index: int, label_smoothing: float, smoothing: str, reduction: str, divisor: float,
    inv_temperature: float, z_loss: float, softcap: float | None, chunk_rows: int,
    class_blocked: bool, row_kernel: str, need_hidden: bool, need_weight: bool,
    need_shift: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reduction "none": the gradients of ``sum_i row_grad_i loss_i``, by a second sweep."""
    options = dict(zip(_OPTION_NAMES, (
        ignore_index, label_smoothing, smoothing, reduction, divisor, inv_temperature, z_loss,
        softcap, chunk_rows, class_blocked, row_kernel,
    ), strict=True))
    (_, _, *grads), _ = _sweep(
        hidden, weight, shift, target, class_weight, options, row_grad.contiguous(),
        (need_hidden, need_weight, need_shift),
    )
    return tuple(_or_empty(g, hidden) for g in grads)  # type: ignore[return-value]


@_linear_backward_op.register_fake
def _linear_backward_fake(hidden: torch.Tensor, weight: torch.Tensor, *rest: Any,
                          ) -> tuple[torch.Tensor, ...]:
    need_hidden, need_weight, need_shift = rest[-3:]
    return (
        torch.empty_like(hidden) if need_hidden else hidden.new_empty(0),
        torch.empty_like(weight) if need_weight else hidden.new_empty(0),
        hidden.new_empty(weight.shape[0]) if need_shift else hidden.new_empty(0),
    )


def _linear_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Any, ...]) -> None:
    # no zero gradients for the outputs nobody differentiates (the weight-sized dW among them)
    ctx.set_materialize_grads(False)
    ctx.options = inputs[5:16]
    ctx.reduction = inputs[8]
    if ctx.reduction == "none":
        ctx.save_for_backward(*inputs[:5])
        ctx.grads = None
    else:  # detached: an output kept on ctx would be a reference cycle through grad_fn
        ctx.grads = tuple(grad.detach() for grad in output[2:])


def _linear_backward(ctx: Any, grad_loss: torch.Tensor, *unused: Any) -> tuple[Any, ...]:
    needs = tuple(ctx.needs_input_grad[:3])
    if ctx.reduction == "none":
        grads = _linear_backward_op(
            *ctx.saved_tensors, grad_loss.to(ctx.saved_tensors[0].dtype), *ctx.options, *needs)
    else:
        if ctx.grads is None:
            raise RuntimeError(
                "linear_cross_entropy's gradients were already handed to an earlier "
                "backward; run the forward again to backpropagate twice"
            )
        # Drop ctx's references: autograd then adopts these buffers as .grad instead of
        # copying them (a second weight-sized copy at V = 1M), and rescales in place.
        grads, ctx.grads = ctx.grads, None
        grads = tuple(_rescaled(grad, grad_loss) for grad in grads)
    return (*(g if wanted else None for g, wanted in zip(grads, needs, strict=True)),
            *(None,) * 16)


def _rescaled(grad: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``grad * scale``: in place and skipped for a scale of exactly 1 in eager mode."""
    if torch.compiler.is_compiling():
        return grad * scale.to(grad.dtype)
    if grad.numel() and bool(scale != 1):
        grad.mul_(scale.to(grad.dtype))
    return grad


_linear_op.register_autograd(_linear_backward, setup_context=_linear_setup)


def chunked_linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, *,
    bias: torch.Tensor | None, logit_bias: torch.Tensor | None, temperature: float,
    chunk_size: int | None, class_weight: torch.Tensor | None, ignore_index: int,
    reduction: Reduction, label_smoothing: float, smoothing: Smoothing,
    divisor: float, z_loss: float = 0.0, softcap: float | None = None,
    row_kernel: str = "numba",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, lse)`` on validated 2-d inputs (hidden (N, D), weight (V, D), target (N,) or
    (N, V)); see :func:`crossent.linear_cross_entropy` for the public entry point.
    ``row_kernel`` is "numba" (CPU) or "triton" (CUDA); ``lse`` has no gradient."""
    compute = torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype
    # float16/bfloat16 weights on the CPU: class blocks instead of a whole float32 copy
    class_blocked = weight.dtype in LOW_PRECISION and row_kernel == "numba"
    hidden_c = hidden.to(compute).contiguous()
    weight_c = weight.contiguous() if class_blocked else weight.to(compute).contiguous()
    shift = None
    for term in (bias, logit_bias):
        if term is not None:
            shift = term.to(compute) if shift is None else shift + term.to(compute)
    class_weight_c = None if class_weight is None else class_weight.detach().to(compute)
    target_c = target.detach()
    target_c = target_c.to(compute).contiguous() if target_c.dim() == 2 else target_c.long()
    chunk_rows = chunk_size or (0 if class_blocked else default_chunk_rows(
        hidden.shape[0], weight.shape[0], 8 if compute == torch.float64 else 4,
        dim=weight.shape[1]))
    # the gradients are computed in the forward only when a backward will use them
    grads_now = torch.is_grad_enabled() and reduction != "none"
    need = (grads_now and hidden_c.requires_grad, grads_now and weight_c.requires_grad,
            grads_now and shift is not None and shift.requires_grad)
    loss, lse, *_ = _linear_op(
        hidden_c, weight_c, shift, target_c, class_weight_c, int(ignore_index),
        float(label_smoothing), smoothing, reduction, float(divisor), 1.0 / float(temperature),
        float(z_loss), None if softcap is None else float(softcap), int(chunk_rows),
        class_blocked, row_kernel, *need,
    )
    return loss.to(hidden.dtype), lse.detach()
