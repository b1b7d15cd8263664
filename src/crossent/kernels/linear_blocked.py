r"""The class-blocked sweep of linear + cross-entropy, for a float16/bfloat16 weight on the CPU.

Upcasting such a weight whole would cost a float32 copy (0.95 GiB for a (1,000,000, 256)
catalogue) and a float32 gradient as large again. Here the classes are cut into blocks; a first
pass over the blocks keeps each row's running log-sum-exp (online softmax), a second pass
recomputes each block's logits and finishes that block's rows of ``dW`` in float32 before
writing them once in the weight's dtype (no low-precision accumulation across chunks). Only one
float32 block of the weight and one (rows, block) tile of logits exist at a time; the price is
a fourth matrix product (the logits are computed twice).

Each row's loss is written through its coefficients ``c_ij = w_j (a y_ij + b)`` (``(a, b)`` the
smoothing coefficients, ``y`` one-hot or soft, all 0 on an ignored row), their total ``M_i``
and the soft-capped logits ``u_ij`` (``u = z`` without a cap):

.. math::
    \ell_i = M_i \, \mathrm{lse}_i - \sum_j c_{ij} u_{ij} + c_z \mathrm{lse}_i^2, \qquad
    \partial \ell_i / \partial z_{ij}
    = \big((M_i + 2 c_z \mathrm{lse}_i) p_{ij} - c_{ij}\big)\,(1 - (u_{ij}/\mathrm{cap})^2)

so the loss needs per block only a running max, a running sum of exponentials and
``sum_j c_ij u_ij``; the gradient needs ``lse_i``, known after the first pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from crossent.kernels import linear_sweep
from crossent.kernels.linear_sweep import Sweep, SweepSpec, chunk_logits


@dataclass(frozen=True)
class _Tiling:
    """The tensors and sizes both passes share."""

    hidden: torch.Tensor  # (N, D) float32
    weight: torch.Tensor  # (V, D) in its own dtype
    shift: torch.Tensor | None  # (V,) float32
    target: torch.Tensor  # (N,) int64 or (N, V) float32
    spec: SweepSpec
    block: int  # classes per block
    tile_rows: int
    keep: torch.Tensor  # (N,) bool: index target not ignored (all True for soft targets)
    label: torch.Tensor  # (N,) int64: the label, 0 where ignored
    total_mass: torch.Tensor  # (N,) float64: M_i = sum_j c_ij

    def blocks(self) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor | None]]:
        """(first class, last class + 1, float32 weight block, its shift) for every block."""
        for first in range(0, self.weight.shape[0], self.block):
            last = min(self.weight.shape[0], first + self.block)
            weight_block = self.weight[first:last].to(self.hidden.dtype)  # the only upcast
            yield first, last, weight_block, None if self.shift is None else self.shift[
                first:last]

    def tiles(self) -> Iterator[tuple[int, int]]:
        rows = self.hidden.shape[0]
        for start in range(0, rows, self.tile_rows):
            yield start, min(rows, start + self.tile_rows)

    def capped_tile(self, start: int, stop: int, weight_block: torch.Tensor,
                    shift_block: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
        """The soft-capped logits ``u`` of a tile, in ``out``."""
        logits = chunk_logits(self.hidden[start:stop], weight_block, shift_block,
                              self.spec.inv_temperature,
                              out[: stop - start, : weight_block.shape[0]])
        cap = self.spec.softcap
        return logits if cap is None else logits.div_(cap).tanh_().mul_(cap)

    def label_positions(self, start: int, stop: int, first: int,
                        last: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the tile (relative) whose label falls in the class block, and its column."""
        labels = self.label[start:stop]
        inside = self.keep[start:stop] & (labels >= first) & (labels < last)
        local_rows = torch.nonzero(inside).squeeze(1)
        return local_rows, labels[local_rows] - first

    def soft_coefficients(self, start: int, stop: int, first: int, last: int) -> torch.Tensor:
        """The dense (r, b) tile of ``c_ij`` of a probability target (a fresh tensor)."""
        coef = self.target[start:stop, first:last] * self.spec.on_mass + self.spec.off_mass
        if self.spec.class_weight is not None:
            coef.mul_(self.spec.class_weight[first:last])
        return coef

    def weighted_sum(self, logits: torch.Tensor, start: int, stop: int, first: int,
                     last: int) -> torch.Tensor:
        """``sum_j c_ij u_ij`` over the tile's classes, (r,) float64."""
        spec = self.spec
        if self.target.dim() == 2:
            return (self.soft_coefficients(start, stop, first, last).mul_(logits)).sum(
                1).double()
        block_weight = None if spec.class_weight is None else spec.class_weight[first:last]
        total = torch.zeros(stop - start, dtype=torch.float64, device=logits.device)
        if spec.off_mass != 0.0:
            spread = logits @ block_weight if block_weight is not None else logits.sum(1)
            total += spec.off_mass * spread.double() * self.keep[start:stop].double()
        local_rows, columns = self.label_positions(start, stop, first, last)
        chosen = logits[local_rows, columns].double()
        if block_weight is not None:
            chosen = chosen * block_weight[columns].double()
        total[local_rows] += spec.on_mass * chosen
        return total

    def subtract_coefficients(self, grad: torch.Tensor, start: int, stop: int, first: int,
                              last: int, coef_scale: torch.Tensor) -> None:
        """``grad -= scale_i c_ij`` on the tile, in place (no tile-sized temporary for index
        targets)."""
        spec = self.spec
        if self.target.dim() == 2:
            grad.sub_(self.soft_coefficients(start, stop, first, last).mul_(coef_scale))
            return
        block_weight = None if spec.class_weight is None else spec.class_weight[first:last]
        if spec.off_mass != 0.0:
            spread = block_weight if block_weight is not None else torch.ones(
                1, dtype=grad.dtype, device=grad.device)
            keep_scale = coef_scale * self.keep[start:stop].unsqueeze(1)
            grad.addcmul_(keep_scale, spread, value=-spec.off_mass)
        local_rows, columns = self.label_positions(start, stop, first, last)
        coef_on = spec.on_mass * coef_scale.squeeze(1)[local_rows]
        if block_weight is not None:
            coef_on = coef_on * block_weight[columns]
        grad[local_rows, columns] -= coef_on


def _tiling(hidden: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor | None,
            target: torch.Tensor, spec: SweepSpec) -> _Tiling:
    rows, classes = hidden.shape[0], weight.shape[0]
    block = linear_sweep.default_block_classes(rows, classes)
    tile_rows = spec.chunk_rows or max(
        1, min(rows, linear_sweep.CHUNK_BUDGET_BYTES // (4 * block)))
    class_weight = spec.class_weight
    weight_sum = float(class_weight.sum()) if class_weight is not None else float(classes)
    if target.dim() == 2:  # M_i = a (t_i . w) + b sum(w)
        labelled = target @ class_weight if class_weight is not None else target.sum(1)
        keep = torch.ones(rows, dtype=torch.bool, device=hidden.device)
        label = torch.zeros(rows, dtype=torch.long, device=hidden.device)
        total_mass = spec.on_mass * labelled.double() + spec.off_mass * weight_sum
    else:
        keep = target != spec.ignore_index
        label = torch.where(keep, target, torch.zeros_like(target))
        label_weight = (class_weight[label].double() if class_weight is not None
                        else torch.ones(rows, dtype=torch.float64, device=hidden.device))
        total_mass = (spec.on_mass * label_weight + spec.off_mass * weight_sum) * keep.double()
    return _Tiling(hidden, weight, shift, target, spec, block, tile_rows, keep, label,
                   total_mass)


def _log_sum_exp(tiling: _Tiling) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass 1: ``(lse_i, sum_j c_ij u_ij)`` in float64, block by block (online softmax)."""
    rows, device, compute = tiling.hidden.shape[0], tiling.hidden.device, tiling.hidden.dtype
    buffer = torch.empty(min(tiling.tile_rows, rows), tiling.block, dtype=compute, device=device)
    running_max = torch.full((rows,), -math.inf, dtype=compute, device=device)
    running_sum = torch.zeros(rows, dtype=torch.float64, device=device)
    weighted_logits = torch.zeros(rows, dtype=torch.float64, device=device)
    for first, last, weight_block, shift_block in tiling.blocks():
        for start, stop in tiling.tiles():
            logits = tiling.capped_tile(start, stop, weight_block, shift_block, buffer)
            weighted_logits[start:stop] += tiling.weighted_sum(logits, start, stop, first, last)
            new_max = torch.maximum(running_max[start:stop], logits.amax(1))
            running_sum[start:stop] *= torch.exp(running_max[start:stop] - new_max).double()
            running_sum[start:stop] += logits.sub_(new_max.unsqueeze(1)).exp_().sum(1).double()
            running_max[start:stop] = new_max
    return running_max.double() + torch.log(running_sum), weighted_logits


def _gradients(tiling: _Tiling, lse: torch.Tensor, row_scale: torch.Tensor,
               need: tuple[bool, bool, bool]) -> tuple[torch.Tensor | None, ...]:
    """Pass 2: per block, recompute the logits, turn them into dloss/dz, finish dW's block."""
    hidden, spec = tiling.hidden, tiling.spec
    rows, compute, device = hidden.shape[0], hidden.dtype, hidden.device
    grad_hidden = torch.zeros_like(hidden) if need[0] else None
    grad_weight = torch.empty_like(tiling.weight) if need[1] else None
    grad_shift = torch.zeros(tiling.weight.shape[0], dtype=compute, device=device) \
        if need[2] else None
    z_term = 2.0 * spec.z_loss * lse * tiling.keep.double()
    prob_scale = ((tiling.total_mass + z_term).to(compute) * row_scale).unsqueeze(1)
    coef_scale = row_scale.unsqueeze(1)
    lse_c = lse.to(compute).unsqueeze(1)
    buffer = torch.empty(min(tiling.tile_rows, rows), tiling.block, dtype=compute, device=device)
    for first, last, weight_block, shift_block in tiling.blocks():
        block_grad = torch.zeros_like(weight_block) if grad_weight is not None else None
        for start, stop in tiling.tiles():
            grad = tiling.capped_tile(start, stop, weight_block, shift_block, buffer)
            chain = None if spec.softcap is None else 1.0 - (grad / spec.softcap).square_()
            grad.sub_(lse_c[start:stop]).exp_().mul_(prob_scale[start:stop])  # (M + 2c lse) p
            tiling.subtract_coefficients(grad, start, stop, first, last, coef_scale[start:stop])
            if chain is not None:
                grad.mul_(chain)  # through the soft-cap
            if grad_hidden is not None:
                grad_hidden[start:stop].addmm_(grad, weight_block)  # dH += dZ W_block
            if block_grad is not None:
                block_grad.addmm_(grad.t(), hidden[start:stop])  # dW_block += dZ^T H
            if grad_shift is not None:
                grad_shift[first:last] += grad.sum(0)
        if grad_weight is not None and block_grad is not None:
            grad_weight[first:last].copy_(block_grad)  # rounded once, to the weight's dtype
    return grad_hidden, grad_weight, grad_shift


def class_sweep(
    hidden: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor | None,
    target: torch.Tensor, spec: SweepSpec, *, grad_scale: float,
    row_grad: torch.Tensor | None, need: tuple[bool, bool, bool],
) -> Sweep:
    """:func:`crossent.kernels.linear_sweep.row_sweep`'s contract for a float16/bfloat16
    ``weight`` kept in its own dtype (``hidden``, ``shift``, class weights and a soft target
    are float32). ``grad_weight`` comes back in the weight's dtype; ``spec.row_kernel`` is not
    used (the softmax is done per tile with torch operations)."""
    rows = hidden.shape[0]
    if rows == 0:
        empty = torch.zeros(0, dtype=torch.float64, device=hidden.device)
        return (empty, empty.clone(), torch.zeros_like(hidden) if need[0] else None,
                torch.zeros_like(weight) if need[1] else None,
                torch.zeros(weight.shape[0], dtype=hidden.dtype, device=hidden.device)
                if need[2] else None)
    tiling = _tiling(hidden, weight, shift, target, spec)
    lse, weighted_logits = _log_sum_exp(tiling)
    z_term = spec.z_loss * lse.square() * tiling.keep.double()
    row_loss = tiling.total_mass * lse - weighted_logits + z_term
    if not any(need):
        return row_loss, lse, None, None, None
    row_scale = torch.full((rows,), grad_scale * spec.inv_temperature, dtype=hidden.dtype,
                           device=hidden.device)
    if row_grad is not None:
        row_scale.mul_(row_grad)
    return (row_loss, lse, *_gradients(tiling, lse, row_scale, need))  # type: ignore[return-value]
