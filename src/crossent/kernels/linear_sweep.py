"""The row-chunked sweep of linear + cross-entropy, and how big its chunks are.

Per chunk of rows of ``hidden`` (N, D):

1. one GEMM writes the chunk's logits ``(h W^T + shift) / T`` into a reused buffer,
2. the fused row kernel (:func:`crossent.kernels.cpu.row_kernel`, or the Triton one) turns
   them, in place, into the gradient of the reduced loss with respect to those logits (with
   the soft-cap and z-loss terms) and returns the per-row losses and log-sum-exps,
3. two GEMMs accumulate the gradients ``dH = dZ W`` and ``dW += dZ^T H`` (and ``db += sum dZ``).

So the whole forward + backward costs the three matrix products of a plain implementation and
never holds more than one chunk of logits.

Chunk size: ``chunk_size`` rows if given, otherwise as many rows as fit a logits buffer of
a quarter of the weight's size, but at least :data:`ROW_CHUNK_FLOOR_BYTES` and at most half
the weight's size (yet never below :data:`SMALL_CHUNK_BYTES`, where memory is no concern and
fewer chunks are faster), and at least :data:`MIN_CHUNK_ROWS` rows. Larger chunks make the
``dW += dZ^T H`` update cheaper (it reads and writes all of ``dW`` once per chunk), smaller
ones use less memory. Tying the buffer to the weight keeps it a fraction of what the weight and
its gradient occupy anyway; at most half the weight keeps it below the weight-sized gradient
accumulator that torch's own chunked ``linear_cross_entropy`` holds on the CPU (the README's
benchmark section compares the two by the bytes their tensors hold).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from crossent.kernels import rules

CHUNK_BUDGET_BYTES = 128 * 2**20
"""Memory for one float32 tile of the class-blocked route (see ``default_block_classes``)."""

ROW_CHUNK_FLOOR_BYTES = 48 * 2**20
"""The row route's logits buffer is at least this (if the weight allows): 48 MiB."""

SMALL_CHUNK_BYTES = 8 * 2**20
"""A logits buffer this small is always allowed: 8 MiB (a small catalogue is one chunk)."""

MIN_CHUNK_ROWS = 64
"""Fewest rows per chunk of the row route by default (fewer make slow, dW-bound chunks)."""

MIN_BLOCK_CLASSES = 256
"""Fewest classes per block of the class-blocked route (narrower blocks make slow GEMMs)."""


def default_chunk_rows(rows: int, num_classes: int, itemsize: int,
                       budget_bytes: int | None = None, dim: int = 0) -> int:
    """Rows per chunk so that one (rows, V) logits buffer fits the budget (>= 1, <= N).

    The budget is ``budget_bytes`` if given. Otherwise it is a quarter of the (V, ``dim``)
    weight's bytes, raised to :data:`ROW_CHUNK_FLOOR_BYTES` but never above half the weight
    unless that is below :data:`SMALL_CHUNK_BYTES`, and the chunk has at least
    :data:`MIN_CHUNK_ROWS` rows.
    """
    row_bytes = max(1, num_classes * itemsize)
    if budget_bytes is not None:
        fitting = budget_bytes // row_bytes
    else:
        weight_bytes = num_classes * dim * itemsize
        budget = max(SMALL_CHUNK_BYTES,
                     min(max(ROW_CHUNK_FLOOR_BYTES, weight_bytes // 4), weight_bytes // 2))
        fitting = max(MIN_CHUNK_ROWS, budget // row_bytes)
    return int(max(1, min(rows, fitting)))


def default_block_classes(rows: int, num_classes: int, budget_bytes: int | None = None) -> int:
    """Classes per block of the class-blocked route: a float32 (rows, block) tile fits
    ``budget_bytes`` (default :data:`CHUNK_BUDGET_BYTES`), but at least
    :data:`MIN_BLOCK_CLASSES` (and at most V)."""
    budget = CHUNK_BUDGET_BYTES if budget_bytes is None else budget_bytes
    fitting = budget // max(1, rows * 4)
    return int(min(num_classes, max(MIN_BLOCK_CLASSES, fitting)))


RowKernel = rules.RowKernel


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep needs besides the tensors it differentiates: the loss's rules and options.

    ``(on_mass, off_mass)`` are the smoothing coefficients
    (:func:`crossent.kernels.rules.smoothing_coefficients`); the logits are
    ``(hidden @ weight.T + shift) * inv_temperature``, soft-capped by ``softcap`` (None: off),
    and each non-ignored row's loss gets ``z_loss * lse^2``. ``chunk_rows`` is None for "all
    the budget allows" (class-blocked route only).
    """

    class_weight: torch.Tensor | None
    ignore_index: int
    on_mass: float
    off_mass: float
    inv_temperature: float
    z_loss: float
    softcap: float | None
    chunk_rows: int | None
    row_kernel: RowKernel | None


Sweep = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None,
              torch.Tensor | None]
"""``(row_loss, lse, grad_hidden, grad_weight, grad_shift)``; loss and lse float64 ``(N,)``."""


def chunk_logits(hidden_chunk: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor | None,
                 inv_temperature: float, out: torch.Tensor) -> torch.Tensor:
    """``(shift + h W^T) / T`` of one chunk, written into ``out`` ((r, V) or a view)."""
    if shift is None:
        torch.mm(hidden_chunk, weight.t(), out=out)
        if inv_temperature != 1.0:
            out.mul_(inv_temperature)
    else:  # (shift + h W^T) / T in one GEMM call
        torch.addmm(shift, hidden_chunk, weight.t(), beta=inv_temperature,
                    alpha=inv_temperature, out=out)
    return out


def row_sweep(
    hidden: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor | None,
    target: torch.Tensor, spec: SweepSpec, *, grad_scale: float,
    row_grad: torch.Tensor | None, need: tuple[bool, bool, bool],
) -> Sweep:
    """One pass over the row chunks: per-row losses and log-sum-exps (nats, float64) and the
    gradients of ``grad_scale * sum_i row_grad_i * loss_i`` for ``need = (hidden, weight,
    shift)``. ``row_grad`` (reduction "none", in backward) weighs each row's gradient."""
    rows, classes = hidden.shape[0], weight.shape[0]
    device = hidden.device
    row_loss = torch.zeros(rows, dtype=torch.float64, device=device)
    lse = torch.zeros(rows, dtype=torch.float64, device=device)
    grad_hidden = torch.empty_like(hidden) if need[0] else None
    grad_weight = torch.zeros_like(weight) if need[1] else None
    grad_shift = torch.zeros(classes, dtype=hidden.dtype, device=device) if need[2] else None
    if rows == 0:
        return row_loss, lse, grad_hidden, grad_weight, grad_shift
    assert spec.chunk_rows is not None and spec.row_kernel is not None  # set by the caller
    # (R, V) logits buffer, allocated once and reused by every chunk
    buffer = torch.empty(min(spec.chunk_rows, rows), classes, dtype=hidden.dtype, device=device)
    options = rules.RowOptions(
        spec.class_weight, ignore_index=spec.ignore_index, on_mass=spec.on_mass,
        off_mass=spec.off_mass, z_loss=spec.z_loss, softcap=spec.softcap, check=False,
        need_lse=True,
        # the chain rule through "/ T" is one more factor on the reduction's scale
        grad_scale=grad_scale * spec.inv_temperature,
    )
    for start in range(0, rows, spec.chunk_rows):
        stop = min(rows, start + spec.chunk_rows)
        hidden_chunk = hidden[start:stop]  # (r, D)
        logits = chunk_logits(hidden_chunk, weight, shift, spec.inv_temperature,
                              buffer[: stop - start])  # (r, V)
        # the fused kernel overwrites the logits with dloss/dlogits (times the scale)
        chunk_loss, chunk_lse, _ = spec.row_kernel(logits, target[start:stop], logits, options)
        row_loss[start:stop] = chunk_loss
        lse[start:stop] = chunk_lse
        if row_grad is not None:
            logits.mul_(row_grad[start:stop].unsqueeze(1))
        if grad_hidden is not None:
            torch.mm(logits, weight, out=grad_hidden[start:stop])  # dH = dZ W
        if grad_weight is not None:
            grad_weight.addmm_(logits.t(), hidden_chunk)  # dW += dZ^T H
        if grad_shift is not None:
            grad_shift.add_(logits.sum(0))
    return row_loss, lse, grad_hidden, grad_weight, grad_shift
