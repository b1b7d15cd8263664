"""Data-parallel glue for the sharded softmax: rows gathered from every rank, and the
identity/sum pair that moves replicated tensors into and out of a sharded computation. Without
a process group every function is the identity."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from crossent.distributed.sharded import _group_info
from crossent.errors import CrossentError

__all__ = ["copy_to_shards", "gather_rows", "sum_from_shards"]


class _GatherRows(torch.autograd.Function):
    """All-gather rows of different counts; backward keeps this rank's rows of the gradient."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, local: Tensor, counts: tuple[int, ...], rank: int, group: Any
    ) -> Tensor:
        largest = max(counts)
        padded = local.new_zeros((largest, *local.shape[1:]))
        padded[: local.shape[0]] = local.detach()
        buffers = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(buffers, padded, group=group)
        ctx.start = sum(counts[:rank])
        ctx.count = counts[rank]
        return torch.cat([buffer[:count] for buffer, count in zip(buffers, counts, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        return grad[ctx.start : ctx.start + ctx.count], None, None, None


def gather_rows(local: Tensor, counts: list[int] | tuple[int, ...], *, group: Any = None) -> Tensor:
    """Concatenate every rank's rows (rank order), differentiably: data parallel meets sharding.

    Under data parallelism each rank computes its own rows (say, user vectors of its part of
    the batch), while the sharded softmax needs every row on every rank. The backward pass
    returns this rank's rows of the incoming gradient: the loss that follows (e.g.
    :func:`sharded_cross_entropy`) is the same on every rank and its gradient of the gathered
    rows is already complete, so nothing is summed here.

    Args:
        local: (n_r, ...) this rank's rows.
        counts: rows on each rank, in rank order (known on every rank; ``counts[rank] = n_r``).

    Returns:
        (sum(counts), ...) all rows in rank order. Without a process group, ``local`` itself.
    """
    rank, world_size = _group_info(group)
    if len(counts) != world_size or counts[rank] != local.shape[0]:
        raise CrossentError(
            f"counts = {list(counts)} must list the rows of each of the {world_size} ranks, "
            f"with counts[{rank}] = {local.shape[0]} (this rank's rows)"
        )
    if world_size == 1:
        return local
    result: Tensor = _GatherRows.apply(local, tuple(counts), rank, group)
    return result


class _CopyToShards(torch.autograd.Function):
    """Identity forward; SUM all-reduce of the gradient backward (Megatron's "f")."""

    @staticmethod
    def forward(ctx: Any, replicated: Tensor, group: Any) -> Tensor:  # type: ignore[override]
        ctx.group = group
        return replicated.view_as(replicated)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class _SumFromShards(torch.autograd.Function):
    """SUM all-reduce forward; identity backward (Megatron's "g")."""

    @staticmethod
    def forward(ctx: Any, partial: Tensor, group: Any) -> Tensor:  # type: ignore[override]
        total = partial.detach().contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        return grad, None


def copy_to_shards(replicated: Tensor, *, group: Any = None) -> Tensor:
    """Mark a tensor that is the same on every rank as the input of shard-local computation.

    Forward: the tensor itself. Backward: the gradients of all ranks summed (each rank's
    shard contributes part of it). Pair with :func:`sum_from_shards`.
    """
    _, world_size = _group_info(group)
    if world_size == 1:
        return replicated
    result: Tensor = _CopyToShards.apply(replicated, group)
    return result


def sum_from_shards(partial: Tensor, *, group: Any = None) -> Tensor:
    """Sum per-shard partial results (e.g. scores of the items each rank owns, 0 elsewhere).

    Forward: SUM all-reduce. Backward: the gradient is passed through unchanged, since the
    result, and so its gradient, is the same on every rank.
    """
    _, world_size = _group_info(group)
    if world_size == 1:
        return partial
    result: Tensor = _SumFromShards.apply(partial, group)
    return result
