"""Chunked linear + cross-entropy: the loss of ``hidden @ weight.T`` without the (N, V) logits.

For a large output layer (a vocabulary, a catalogue of a million videos) the logits are by far
the largest tensor of a training step: N = 8192 rows by V = 100,000 classes is 3 GiB in
float32, and PyTorch eager keeps several such tensors alive. Here the rows are processed in
chunks; per chunk

1. one GEMM writes the chunk's logits ``(h W^T + b + logit_bias) / T`` into a reused buffer,
2. the fused CPU kernel (:mod:`crossent.kernels.cpu`) turns them, in place, into the gradient
   of the reduced loss with respect to those logits (and returns the per-row losses),
3. two GEMMs accumulate the gradients ``dH = dZ W`` and ``dW += dZ^T H`` (and ``db += sum dZ``).

So the whole forward + backward costs the three matrix products of a plain implementation and
never holds more than one chunk of logits. The autograd backward only multiplies the stored
gradients by the incoming (scalar) gradient. With ``reduction="none"`` the incoming gradient is
one number per row and cannot be applied afterwards, so there backward makes a second sweep.

float16 / bfloat16 weights on the CPU take a second, class-blocked route (:func:`_class_sweep`)
instead of being upcast whole: a float32 copy of a (1,000,000, 256) catalogue alone is 0.95 GiB,
and its float32 gradient as much again. There the classes are cut into blocks; a first pass
over the blocks keeps each row's running log-sum-exp (online softmax), a second pass recomputes
each block's logits and finishes that block's rows of ``dW`` in float32 before writing them once
in the weight's dtype (no low-precision accumulation across chunks). Only one float32 block of
the weight and one (rows, block) tile of logits exist at a time; the price is a fourth matrix
product (the logits are computed twice).

Chunk size: ``chunk_size`` rows if given, otherwise as many rows as fit a logits buffer of
:data:`CHUNK_BUDGET_BYTES` (128 MiB) or a quarter of the weight's size, whichever is larger
(at least 1 row). Larger chunks make the ``dW += dZ^T H`` update cheaper (it reads and writes
all of ``dW`` once per chunk), smaller ones use less memory; tying the budget to the weight
keeps the chunk a fraction of what the weight and its gradient occupy anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from crossent._validation.choices import Reduction, Smoothing
from crossent.kernels import cpu

CHUNK_BUDGET_BYTES = 128 * 2**20
"""Least memory for one chunk of logits (the only (rows, V) buffer): 128 MiB."""

MIN_BLOCK_CLASSES = 256
"""Fewest classes per block of the class-blocked route (narrower blocks make slow GEMMs)."""

LOW_PRECISION = (torch.float16, torch.bfloat16)


def default_chunk_rows(rows: int, num_classes: int, itemsize: int,
                       budget_bytes: int | None = None, dim: int = 0) -> int:
    """Rows per chunk so that one (rows, V) logits buffer fits the budget (>= 1, <= N).

    The budget is ``budget_bytes`` if given, else the larger of :data:`CHUNK_BUDGET_BYTES` and
    a quarter of the (V, ``dim``) weight's bytes.
    """
    if budget_bytes is None:
        budget_bytes = max(CHUNK_BUDGET_BYTES, num_classes * dim * itemsize // 4)
    fitting = budget_bytes // max(1, num_classes * itemsize)
    return int(max(1, min(rows, fitting)))


def _sweep(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    shift: torch.Tensor | None,
    target: torch.Tensor,
    *,
    class_weight: torch.Tensor | None,
    ignore_index: int,
    on_mass: float,
    off_mass: float,
    inv_temperature: float,
    grad_scale: float,
    row_grad: torch.Tensor | None,
    chunk_rows: int,
    need_hidden: bool,
    need_weight: bool,
    need_shift: bool,
    row_kernel: RowKernel,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """One pass over the row chunks: per-row losses (nats, float64 numpy) and the gradients.

    ``shift`` is the combined per-class additive term (bias + logit_bias) or None; the logits
    are ``(hidden @ weight.T + shift) * inv_temperature``. ``row_grad`` (reduction "none" in
    backward) multiplies each row's gradient. Gradients are those of
    ``grad_scale * sum_i row_grad_i * loss_i``. ``row_kernel`` is the fused softmax kernel
    (:func:`cpu_row_kernel`, or the Triton one on CUDA).
    """
    rows, _ = hidden.shape
    classes = weight.shape[0]
    device = hidden.device
    row_loss = torch.empty(rows, dtype=torch.float64, device=device)
    grad_hidden = torch.empty_like(hidden) if need_hidden else None
    grad_weight = torch.zeros_like(weight) if need_weight else None
    grad_shift = torch.zeros(classes, dtype=hidden.dtype, device=device) if need_shift else None
    if rows == 0:
        return row_loss, grad_hidden, grad_weight, grad_shift
    # (R, V) logits buffer, allocated once and reused by every chunk
    buffer = torch.empty(min(chunk_rows, rows), classes, dtype=hidden.dtype, device=device)
    column_sum = torch.empty(classes, dtype=hidden.dtype, device=device) if need_shift else None
    weight_t = weight.t()  # (D, V) view
    for start in range(0, rows, chunk_rows):
        stop = min(rows, start + chunk_rows)
        hidden_chunk = hidden[start:stop]  # (r, D)
        logits = buffer[: stop - start]  # (r, V)
        if shift is None:
            torch.mm(hidden_chunk, weight_t, out=logits)
            if inv_temperature != 1.0:
                logits.mul_(inv_temperature)
        else:  # (shift + h W^T) / T in one GEMM call
            torch.addmm(
                shift, hidden_chunk, weight_t, beta=inv_temperature, alpha=inv_temperature,
                out=logits,
            )
        # the fused kernel overwrites the logits with dloss/dlogits (times the reduction scale);
        # the chain rule through "/ T" is one more factor on that scale
        row_loss[start:stop] = row_kernel(
            logits, target[start:stop], logits, weight=class_weight, ignore_index=ignore_index,
            on_mass=on_mass, off_mass=off_mass, grad_scale=grad_scale * inv_temperature,
        )
        if row_grad is not None:
            logits.mul_(row_grad[start:stop].unsqueeze(1))
        if grad_hidden is not None:
            torch.mm(logits, weight, out=grad_hidden[start:stop])  # dH = dZ W
        if grad_weight is not None:
            grad_weight.addmm_(logits.t(), hidden_chunk)  # dW += dZ^T H
        if grad_shift is not None and column_sum is not None:
            torch.sum(logits, dim=0, out=column_sum)
            grad_shift.add_(column_sum)
    return row_loss, grad_hidden, grad_weight, grad_shift


def default_block_classes(rows: int, num_classes: int, budget_bytes: int | None = None) -> int:
    """Classes per block of the class-blocked route: a float32 (rows, block) tile fits
    ``budget_bytes`` (default :data:`CHUNK_BUDGET_BYTES`), but at least
    :data:`MIN_BLOCK_CLASSES` (and at most V)."""
    budget = CHUNK_BUDGET_BYTES if budget_bytes is None else budget_bytes
    fitting = budget // max(1, rows * 4)
    return int(min(num_classes, max(MIN_BLOCK_CLASSES, fitting)))


def _class_sweep(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    shift: torch.Tensor | None,
    target: torch.Tensor,
    *,
    class_weight: torch.Tensor | None,
    ignore_index: int,
    on_mass: float,
    off_mass: float,
    inv_temperature: float,
    grad_scale: float,
    row_grad: torch.Tensor | None,
    chunk_rows: int | None,
    need_hidden: bool,
    need_weight: bool,
    need_shift: bool,
    row_kernel: RowKernel | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    r""":func:`_sweep`'s contract for a float16/bfloat16 ``weight`` kept in its own dtype.

    ``hidden``, ``shift``, ``class_weight`` and a soft ``target`` are float32. Each row's loss
    is written through its coefficients ``c_ij = w_j (a y_ij + b)`` (``(a, b)`` the smoothing
    coefficients, ``y`` one-hot or soft, all 0 on an ignored row) and their total ``M_i``:

    .. math::
        \ell_i = M_i \, \mathrm{lse}_i - \sum_j c_{ij} z_{ij}, \qquad
        \partial \ell_i / \partial z_{ij} = M_i \, p_{ij} - c_{ij}

    so the loss needs per block only a running max, a running sum of exponentials and
    ``sum_j c_ij z_ij``; the gradient needs ``lse_i``, known after the first pass. Tiles are
    ``chunk_rows`` rows (default: all rows the budget allows) by
    :func:`default_block_classes` classes. ``grad_weight`` comes back in the weight's dtype.
    ``row_kernel`` is not used (the softmax is done per tile with torch operations).
    """
    rows, _ = hidden.shape
    classes = weight.shape[0]
    device, compute = hidden.device, hidden.dtype
    grad_hidden = torch.zeros_like(hidden) if need_hidden else None
    grad_weight = torch.empty_like(weight) if need_weight else None
    grad_shift = torch.zeros(classes, dtype=compute, device=device) if need_shift else None
    if rows == 0:
        if grad_weight is not None:
            grad_weight.zero_()
        return torch.zeros(0, dtype=torch.float64, device=device), grad_hidden, grad_weight, \
            grad_shift
    block = default_block_classes(rows, classes)
    tile_rows = chunk_rows or max(1, min(rows, CHUNK_BUDGET_BYTES // (4 * block)))
    soft = target.dim() == 2
    weight_sum = float(class_weight.sum()) if class_weight is not None else float(classes)
    if soft:
        # M_i = a (t_i . w) + b sum(w)
        labelled = target @ class_weight if class_weight is not None else target.sum(1)
        total_mass = on_mass * labelled.double() + off_mass * weight_sum
        keep = torch.ones(rows, dtype=torch.bool, device=device)  # unused: no index targets
        label = torch.zeros(rows, dtype=torch.long, device=device)
    else:
        keep = target != ignore_index
        label = torch.where(keep, target, torch.zeros_like(target))
        label_weight = (
            class_weight[label].double() if class_weight is not None
            else torch.ones(rows, dtype=torch.float64, device=device)
        )
        total_mass = (on_mass * label_weight + off_mass * weight_sum) * keep.double()

    def class_blocks() -> Any:
        """(first class, last class + 1, float32 weight block, its shift) for every block."""
        for first in range(0, classes, block):
            last = min(classes, first + block)
            weight_block = weight[first:last].to(compute)  # (B, D), the only upcast
            yield first, last, weight_block, None if shift is None else shift[first:last]

    def logits_tile(start: int, stop: int, weight_block: torch.Tensor,
                    shift_block: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
        logits = out[: stop - start, : weight_block.shape[0]]
        if shift_block is None:
            torch.mm(hidden[start:stop], weight_block.t(), out=logits)
        else:
            torch.addmm(shift_block, hidden[start:stop], weight_block.t(), out=logits)
        if inv_temperature != 1.0:
            logits.mul_(inv_temperature)
        return logits

    def label_positions(start: int, stop: int, first: int, last: int) -> tuple[Any, Any]:
        """Rows of the tile (relative) whose label falls in the class block, and its column."""
        labels = label[start:stop]
        inside = keep[start:stop] & (labels >= first) & (labels < last)
        local_rows = torch.nonzero(inside).squeeze(1)
        return local_rows, labels[local_rows] - first

    buffer = torch.empty(min(tile_rows, rows), block, dtype=compute, device=device)
    running_max = torch.full((rows,), -math.inf, dtype=compute, device=device)
    running_sum = torch.zeros(rows, dtype=torch.float64, device=device)
    weighted_logits = torch.zeros(rows, dtype=torch.float64, device=device)  # sum_j c_ij z_ij
    # pass 1: online log-sum-exp and sum_j c_ij z_ij, block by block
    for first, last, weight_block, shift_block in class_blocks():
        block_weight = None if class_weight is None else class_weight[first:last]
        for start in range(0, rows, tile_rows):
            stop = min(rows, start + tile_rows)
            logits = logits_tile(start, stop, weight_block, shift_block, buffer)
            if soft:
                coef = target[start:stop, first:last] * on_mass + off_mass
                if block_weight is not None:
                    coef.mul_(block_weight)
                weighted_logits[start:stop] += (coef.mul_(logits)).sum(1).double()
            else:
                if off_mass != 0.0:
                    spread = logits @ block_weight if block_weight is not None else logits.sum(1)
                    weighted_logits[start:stop] += off_mass * spread.double() * keep[
                        start:stop].double()
                local_rows, columns = label_positions(start, stop, first, last)
                if local_rows.numel():
                    chosen = logits[local_rows, columns].double()
                    coef_on = on_mass * (
                        class_weight[first + columns].double() if class_weight is not None
                        else torch.ones_like(chosen)
                    )
                    weighted_logits[start + local_rows] += coef_on * chosen
            new_max = torch.maximum(running_max[start:stop], logits.amax(1))
            running_sum[start:stop] *= torch.exp(running_max[start:stop] - new_max).double()
            running_sum[start:stop] += logits.sub_(new_max.unsqueeze(1)).exp_().sum(1).double()
            running_max[start:stop] = new_max
    log_total = running_max.double() + torch.log(running_sum)  # lse_i
    row_loss = total_mass * log_total - weighted_logits
    if not (need_hidden or need_weight or need_shift):
        return row_loss, None, None, None
    # pass 2: per block, recompute the logits, turn them into dloss/dz, finish dW's block
    row_scale = torch.full((rows,), grad_scale * inv_temperature, dtype=compute, device=device)
    if row_grad is not None:
        row_scale.mul_(row_grad)
    lse = log_total.to(compute).unsqueeze(1)
    prob_scale = (total_mass.to(compute) * row_scale).unsqueeze(1)
    coef_scale = row_scale.unsqueeze(1)
    for first, last, weight_block, shift_block in class_blocks():
        block_weight = None if class_weight is None else class_weight[first:last]
        block_grad = torch.zeros_like(weight_block) if grad_weight is not None else None
        for start in range(0, rows, tile_rows):
            stop = min(rows, start + tile_rows)
            grad = logits_tile(start, stop, weight_block, shift_block, buffer)
            grad.sub_(lse[start:stop]).exp_().mul_(prob_scale[start:stop])  # M_i p_ij
            if soft:
                coef = target[start:stop, first:last] * on_mass + off_mass
                if block_weight is not None:
                    coef.mul_(block_weight)
                grad.sub_(coef.mul_(coef_scale[start:stop]))
            else:
                if off_mass != 0.0:
                    spread = block_weight if block_weight is not None else torch.ones(
                        1, dtype=compute, device=device)
                    keep_scale = coef_scale[start:stop] * keep[start:stop].unsqueeze(1)
                    grad.addcmul_(keep_scale, spread, value=-off_mass)  # no tile-sized temporary
                local_rows, columns = label_positions(start, stop, first, last)
                if local_rows.numel():
                    coef_on = on_mass * coef_scale[start:stop].squeeze(1)[local_rows]
                    if class_weight is not None:
                        coef_on = coef_on * class_weight[first + columns]
                    grad[local_rows, columns] -= coef_on
            if grad_hidden is not None:
                grad_hidden[start:stop].addmm_(grad, weight_block)  # dH += dZ W_block
            if block_grad is not None:
                block_grad.addmm_(grad.t(), hidden[start:stop])  # dW_block += dZ^T H
            if grad_shift is not None:
                grad_shift[first:last] += grad.sum(0)
        if grad_weight is not None and block_grad is not None:
            grad_weight[first:last].copy_(block_grad)  # rounded once, to the weight's dtype
    return row_loss, grad_hidden, grad_weight, grad_shift


RowKernel = Callable[..., torch.Tensor]
"""``(logits, target, grad_buffer, *, weight, ignore_index, on_mass, off_mass, grad_scale)`` ->
per-row losses in nats; writes the scaled gradient rows into ``grad_buffer``."""


def cpu_row_kernel(
    logits: torch.Tensor, target: torch.Tensor, grad_buffer: torch.Tensor, **options: Any
) -> torch.Tensor:
    """:func:`crossent.kernels.cpu.row_losses` with a tensor result."""
    return torch.from_numpy(cpu.row_losses(logits, target, grad_buffer, **options))


def reduce_rows(
    row_loss: torch.Tensor, reduction: str, denominator: float, divisor: float,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Reduction and log-base divisor of per-row losses in nats; a mean over nothing is 0."""
    if reduction == "none":
        return (row_loss / divisor).to(dtype)
    total = row_loss.sum()
    if reduction == "mean":
        total = total / denominator if denominator != 0.0 else total * 0.0
    return (total / divisor).to(dtype)


class _LinearCrossEntropy(torch.autograd.Function):
    """Loss and all gradients in forward; backward rescales (or re-sweeps for "none")."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        logit_bias: torch.Tensor | None,
        target: torch.Tensor,
        class_weight: torch.Tensor | None,
        options: dict[str, Any],
    ) -> torch.Tensor:
        out_dtype = hidden.dtype
        compute = torch.float32 if out_dtype in (torch.float16, torch.bfloat16) else out_dtype
        hidden_c = hidden.detach().to(compute).contiguous()
        blocked = options["class_blocked"]
        # the class-blocked route keeps a float16/bfloat16 weight as it is (upcast per block)
        weight_c = weight.detach().contiguous() if blocked else weight.detach().to(
            compute).contiguous()
        sweep = _class_sweep if blocked else _sweep
        shift = None
        for term in (bias, logit_bias):
            if term is not None:
                term_c = term.detach().to(compute)
                shift = term_c.clone() if shift is None else shift + term_c
        class_weight_c = None if class_weight is None else class_weight.detach().to(compute)
        target_c = target.detach()
        target_c = target_c.to(compute).contiguous() if target_c.dim() == 2 else target_c.long()
        classes = weight.shape[0]
        on_mass, off_mass = cpu.smoothing_coefficients(
            classes, options["label_smoothing"], options["smoothing"]
        )
        reduction: Reduction = options["reduction"]
        denominator = (
            cpu.mean_denominator(target_c, class_weight_c, options["ignore_index"])
            if reduction == "mean" else 1.0
        )
        divisor = options["divisor"]
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_bias, need_logit_bias = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        sweep_options = {
            "class_weight": class_weight_c, "ignore_index": options["ignore_index"],
            "on_mass": on_mass, "off_mass": off_mass,
            "inv_temperature": 1.0 / options["temperature"],
            "chunk_rows": options["chunk_rows"], "row_kernel": options["row_kernel"],
        }
        # reduction "none": the per-row incoming gradient is only known in backward; under
        # torch.no_grad() there is no backward at all, so only the logits GEMM runs
        grads_now = reduction != "none" and options["grad_enabled"]
        row_loss, grad_hidden, grad_weight, grad_shift = sweep(
            hidden_c, weight_c, shift, target_c, **sweep_options,
            grad_scale=cpu.gradient_scale(reduction, denominator, divisor), row_grad=None,
            need_hidden=grads_now and need_hidden, need_weight=grads_now and need_weight,
            need_shift=grads_now and (need_bias or need_logit_bias),
        )
        ctx.out_dtype = out_dtype
        ctx.reduction = reduction
        if grads_now:
            ctx.grads = (grad_hidden, grad_weight, grad_shift)
        else:
            ctx.sweep = (sweep, hidden_c, weight_c, shift, target_c, sweep_options, 1.0 / divisor)
        return reduce_rows(row_loss, reduction, denominator, divisor, out_dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_bias, need_logit_bias = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        if ctx.reduction == "none":
            sweep, hidden_c, weight_c, shift, target_c, sweep_options, grad_scale = ctx.sweep
            _, grad_hidden, grad_weight, grad_shift = sweep(
                hidden_c, weight_c, shift, target_c, **sweep_options, grad_scale=grad_scale,
                row_grad=grad_output.detach().to(hidden_c.dtype).contiguous(),
                need_hidden=need_hidden, need_weight=need_weight,
                need_shift=need_bias or need_logit_bias,
            )
        else:
            if ctx.grads is None:
                raise RuntimeError(
                    "linear_cross_entropy's gradients were already handed to an earlier "
                    "backward; run the forward again to backpropagate twice"
                )
            grad_hidden, grad_weight, grad_shift = ctx.grads
            # Drop ctx's references: autograd then adopts these buffers as .grad instead of
            # copying them (a second weight-sized copy at V = 1M), and rescales in place.
            ctx.grads = None
            scale = grad_output.detach()
            if bool(scale != 1):
                for grad in (grad_hidden, grad_weight, grad_shift):
                    if grad is not None:
                        grad.mul_(scale.to(grad.dtype))
        out_dtype = ctx.out_dtype

        def cast(grad: torch.Tensor | None, wanted: bool) -> torch.Tensor | None:
            return grad.to(out_dtype) if (grad is not None and wanted) else None

        return (
            cast(grad_hidden, need_hidden), cast(grad_weight, need_weight),
            cast(grad_shift, need_bias), cast(grad_shift, need_logit_bias), None, None, None,
        )


def chunked_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    *,
    bias: torch.Tensor | None,
    logit_bias: torch.Tensor | None,
    temperature: float,
    chunk_size: int | None,
    class_weight: torch.Tensor | None,
    ignore_index: int,
    reduction: Reduction,
    label_smoothing: float,
    smoothing: Smoothing,
    divisor: float,
    row_kernel: RowKernel = cpu_row_kernel,
) -> torch.Tensor:
    """The chunked sweep on validated 2-d inputs (hidden (N, D), weight (V, D), target (N,)
    or (N, V)); see :func:`crossent.linear_cross_entropy` for the public entry point."""
    itemsize = 8 if hidden.dtype == torch.float64 else 4
    # float16/bfloat16 weights on the CPU: class blocks instead of a whole float32 copy
    class_blocked = weight.dtype in LOW_PRECISION and row_kernel is cpu_row_kernel
    chunk_rows = chunk_size if class_blocked else chunk_size or default_chunk_rows(
        hidden.shape[0], weight.shape[0], itemsize, dim=weight.shape[1]
    )
    options = {
        "class_blocked": class_blocked,
        "temperature": float(temperature), "chunk_rows": chunk_rows,
        "ignore_index": int(ignore_index), "reduction": reduction,
        "label_smoothing": float(label_smoothing), "smoothing": smoothing,
        "divisor": float(divisor), "row_kernel": row_kernel,
        "grad_enabled": torch.is_grad_enabled(),
    }
    result: torch.Tensor = _LinearCrossEntropy.apply(
        hidden, weight, bias, logit_bias, target, class_weight, options
    )
    return result
