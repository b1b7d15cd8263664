"""The autograd function behind :func:`crossent.distributed.sharded_cross_entropy`.

Forward: one sweep over chunks of rows computes each row's local log-sum-exp, target logit and
sum of logits on this rank's shard; two all-reduces of per-row scalars (MAX, then SUM) turn them
into the global ones. Backward: each chunk's logits are recomputed (never stored), giving this
shard's part of the gradient of ``hidden`` (summed over ranks by one (N, D) all-reduce) and the
whole gradient of the weight shard (no communication). The smoothing coefficients, the mean
denominator and the reduction are :mod:`crossent.kernels.rules`'; with ``softcap`` every block
of logits is soft-capped (``cap tanh(z / cap)``) as it is computed, and ``z_loss`` adds
``c lse^2`` per non-ignored row, whose gradient is ``2 c lse softmax``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from crossent.kernels import rules


@dataclass(frozen=True)
class ShardPlan:
    """Everything the autograd function needs besides tensors."""

    group: Any
    world_size: int
    shard_offset: int
    num_classes: int
    ignore_index: int
    label_smoothing: float
    smoothing: str
    reduction: str
    divisor: float
    chunk_size: int  # rows per block
    block_elements: int  # logits per (rows x classes) block
    z_loss: float = 0.0
    softcap: float | None = None

    @property
    def off_target_mass(self) -> float:
        """Target probability of each class other than the label (after smoothing)."""
        return rules.smoothing_coefficients(
            self.num_classes, self.label_smoothing, self.smoothing)[1]

    @property
    def on_target_mass(self) -> float:
        """Target probability of the label itself."""
        return sum(rules.smoothing_coefficients(
            self.num_classes, self.label_smoothing, self.smoothing))

    @property
    def total_mass(self) -> float:
        """Sum of the smoothed target distribution (1)."""
        return self.on_target_mass + self.off_target_mass * (self.num_classes - 1)


def _all_reduce(tensor: Tensor, op: Any, plan: ShardPlan) -> None:
    if plan.world_size > 1:
        dist.all_reduce(tensor, op=op, group=plan.group)


def _stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """Row statistics are kept in float64 for float64 input and float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _block_logits(
    hidden_rows: Tensor, weight: Tensor, bias: Tensor | None, columns: slice, dtype: torch.dtype,
    softcap: float | None = None,
) -> Tensor:
    """(Soft-capped) logits of a block of rows against a block of this shard's classes,
    ``(c, b)``."""
    logits = (hidden_rows @ weight[columns].T).to(dtype)  # (c, b)
    if bias is not None:
        logits = logits + bias[columns].to(dtype)
    if softcap is not None:
        logits = logits.div_(softcap).tanh_().mul_(softcap)
    return logits


def _blocks(plan: ShardPlan, rows: int, classes: int) -> list[tuple[slice, slice]]:
    """(row block, class block) pairs, row-major: each (c, b) block of logits has at most
    about ``plan.block_elements`` numbers, and the weight is streamed once per row block."""
    class_block = max(1, plan.block_elements // plan.chunk_size)
    return [
        (slice(start, min(start + plan.chunk_size, rows)),
         slice(first, min(first + class_block, classes)))
        for start in range(0, rows, plan.chunk_size)
        for first in range(0, classes, class_block)
    ]


class ShardedCrossEntropyFunction(torch.autograd.Function):
    """Forward: row statistics and the loss; backward: recompute each block's logits."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        plan: ShardPlan,
    ) -> tuple[Tensor, Tensor]:
        rows, local_classes = hidden.shape[0], weight.shape[0]
        stat = _stat_dtype(hidden.dtype)
        valid = target != plan.ignore_index  # (N,)
        local_index = target - plan.shard_offset  # (N,)
        owned = valid & (local_index >= 0) & (local_index < local_classes)
        local_index = torch.where(owned, local_index, torch.full_like(local_index, -1))

        # online log-sum-exp over class blocks: running max and running shifted sum
        local_max = torch.full((rows,), -math.inf, dtype=stat, device=hidden.device)
        local_sum = torch.zeros(rows, dtype=stat, device=hidden.device)
        # columns: shifted sum of exponentials, target logit, sum of logits
        row_sums = torch.zeros((rows, 3), dtype=stat, device=hidden.device)
        for row_block, class_block in _blocks(plan, rows, local_classes):
            logits = _block_logits(
                hidden[row_block], weight, bias, class_block, stat, plan.softcap)  # (c, b)
            in_block = local_index[row_block] - class_block.start  # (c,)
            hit = (in_block >= 0) & (in_block < logits.shape[1])
            picked = logits.gather(1, torch.where(hit, in_block, 0)[:, None])[:, 0]  # (c,)
            row_sums[row_block, 1] += torch.where(hit, picked, 0.0)
            if plan.label_smoothing > 0.0:
                row_sums[row_block, 2] += logits.sum(dim=1)
            new_max = torch.maximum(local_max[row_block], logits.max(dim=1).values)  # (c,)
            # in place on the block (the logits are done with): sum of exp(z - new max)
            block_sum = logits.sub_(new_max[:, None]).exp_().sum(dim=1)
            local_sum[row_block] = (
                local_sum[row_block] * torch.exp(local_max[row_block] - new_max) + block_sum
            )
            local_max[row_block] = new_max
            del logits  # free this block before the next one is allocated
        local_lse = local_max + torch.log(local_sum)  # -inf on an empty shard

        # log-sum-exp across shards with max shift: lse = M + log sum_r exp(lse_r - M)
        global_max = local_lse.clone()
        _all_reduce(global_max, dist.ReduceOp.MAX, plan)
        row_sums[:, 0] = torch.exp(local_lse - global_max)
        _all_reduce(row_sums, dist.ReduceOp.SUM, plan)
        lse = global_max + torch.log(row_sums[:, 0])  # (N,)

        target_logit, logit_sum = row_sums[:, 1], row_sums[:, 2]
        # -sum_c t_c (z_c - lse) with t = on-target mass at the label, off-target mass elsewhere
        per_row = (
            plan.total_mass * lse
            - (plan.on_target_mass - plan.off_target_mass) * target_logit
            - plan.off_target_mass * logit_sum
            + rules.z_loss_term(lse, plan.z_loss)
        )
        per_row = torch.where(valid, per_row, torch.zeros_like(per_row))
        count = float(rules.mean_denominator(target, None, plan.ignore_index))

        ctx.save_for_backward(hidden, weight, bias, lse, local_index, valid)
        ctx.plan = plan
        ctx.count = count
        ctx.mark_non_differentiable(lse)
        loss = rules.reduce_rows(per_row, plan.reduction, count, plan.divisor)
        return loss.to(hidden.dtype), lse

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_output: Tensor, grad_lse: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        hidden, weight, bias, lse, local_index, valid = ctx.saved_tensors
        plan: ShardPlan = ctx.plan
        stat = lse.dtype
        rows, local_classes = hidden.shape[0], weight.shape[0]
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]

        # d loss / d per_row for each row: the reduction's weight, the log base, the ignore mask
        if plan.reduction == "none":
            row_scale = grad_output.to(stat) / plan.divisor
        else:  # a mean over zero rows is 0 with zero gradient
            scale = rules.gradient_scale(plan.reduction, ctx.count, plan.divisor)
            row_scale = (grad_output.to(stat) * scale).expand(rows)
        row_scale = torch.where(valid, row_scale, torch.zeros_like(row_scale))
        prob_mass = plan.total_mass + 2.0 * plan.z_loss * lse  # (N,)

        grad_hidden = torch.zeros(hidden.shape, dtype=stat, device=hidden.device)
        grad_weight = torch.zeros(weight.shape, dtype=stat, device=weight.device)
        grad_bias = torch.zeros(local_classes, dtype=stat, device=weight.device)
        for row_block, class_block in _blocks(plan, rows, local_classes):
            logits = _block_logits(
                hidden[row_block], weight, bias, class_block, stat, plan.softcap)  # (c, b)
            chain = None if plan.softcap is None else 1.0 - (logits / plan.softcap).square_()
            # d loss_i / d u_ic = (T + 2 c lse_i) q_ic - t_ic (T = total target mass, 1), in
            # place on the block: one (c, b) buffer in the backward pass (two with softcap)
            grad_logits = logits.sub_(lse[row_block, None]).exp_().mul_(
                prob_mass[row_block, None])
            grad_logits -= plan.off_target_mass
            in_block = local_index[row_block] - class_block.start  # (c,)
            mine = ((in_block >= 0) & (in_block < grad_logits.shape[1])).nonzero()[:, 0]
            grad_logits[mine, in_block[mine]] -= plan.on_target_mass - plan.off_target_mass
            grad_logits *= row_scale[row_block, None]
            if chain is not None:
                grad_logits *= chain  # through the soft-cap
            if need_hidden:  # (c, D)
                grad_hidden[row_block].addmm_(grad_logits, weight[class_block].to(stat))
            if need_weight:  # (b, D), in place: no temporary per block
                grad_weight[class_block].addmm_(grad_logits.T, hidden[row_block].to(stat))
            if need_bias:
                grad_bias[class_block] += grad_logits.sum(dim=0)
            del logits, grad_logits  # free this block before the next one is allocated
        if need_hidden:
            # every shard contributes to every row's gradient: the one (N, D) all-reduce
            _all_reduce(grad_hidden, dist.ReduceOp.SUM, plan)
        return (
            grad_hidden.to(hidden.dtype) if need_hidden else None,
            grad_weight.to(weight.dtype) if need_weight else None,
            grad_bias.to(bias.dtype) if need_bias and bias is not None else None,
            None,
            None,
        )
