"""Past one machine: a cross-entropy whose catalogue is split across processes.

The output layer of a recommender (or a language model) is a (V, D) matrix; at V = 100M videos
and D = 256 it is 100 GB and fits on no single device. :func:`sharded_cross_entropy` lets each
process of a ``torch.distributed`` group hold a contiguous slice of its rows,
``[shard_offset, shard_offset + V_r)``, and still computes exactly the loss and gradients of the
unsharded linear cross-entropy ``cross_entropy(hidden @ weight.T + bias, target)``.

Only per-row scalars cross the network in the forward pass: the row maximum of the local
log-sum-exp (a MAX all-reduce of N numbers), then one SUM all-reduce of N x 3 numbers holding
each row's shifted sum of exponentials, its target logit and (for label smoothing) its sum of
logits. The logits and the weight matrix are never gathered. The backward pass computes each
shard's contribution to ``d loss / d hidden`` locally and sums it with one (N, D) all-reduce; the
gradient of the weight shard needs no communication at all.

Every rank passes the same ``hidden`` and ``target`` (replicated rows, sharded classes), and every
rank gets the same loss. :func:`shard_range` gives the default split, :func:`gather_shards`
collects the shards on one process (for checkpoints). Without an initialised process group the
functions run as a world of one process, so the same code runs under ``python`` and ``torchrun``.

Reference: the vocabulary-parallel cross-entropy of Megatron-LM (Shoeybi et al. 2019,
"Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism").
"""

from __future__ import annotations

import zlib
from typing import Any, Literal, overload

import torch
import torch.distributed as dist
from torch import Tensor

from crossent._validation.choices import Reduction, Smoothing
from crossent._validation.fused_options import check_fused_options
from crossent._validation.numbers import check_int
from crossent.distributed._checks import check_layout, check_local_inputs, check_options
from crossent.distributed._function import ShardedCrossEntropyFunction, ShardPlan
from crossent.errors import CrossentError
from crossent.units import Base, log_divisor

__all__ = ["gather_shards", "shard_range", "sharded_cross_entropy"]


# One block of logits (rows x classes) holds about this many numbers (16 MiB in float32): memory
# stays flat in N and V_r while each matmul is still large enough to be fast.
_CHUNK_ELEMENTS = 1 << 22
# Rows per block at least: the weight shard is read once per block of rows, so a few rows per
# block would make a large shard memory-bound; classes are blocked instead.
_MIN_CHUNK_ROWS = 256


def shard_range(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """The default slice ``[start, stop)`` of ``num_classes`` rows owned by ``rank``.

    The first ``num_classes % world_size`` ranks own one row more than the others (the split of
    ``numpy.array_split``), so shards differ in size by at most one row.

    Raises:
        CrossentError: ``num_classes < 1``, ``world_size < 1`` or ``rank`` outside
            ``[0, world_size)``.

    >>> [shard_range(10, r, 3) for r in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    """
    check_int(num_classes, "num_classes", low=1)
    check_int(world_size, "world_size", low=1)
    check_int(rank, "rank", low=0, high=world_size - 1)
    size, extra = divmod(num_classes, world_size)
    start = rank * size + min(rank, extra)
    return start, start + size + (1 if rank < extra else 0)


def _group_info(group: Any) -> tuple[int, int]:
    """(rank, world size) in ``group``; (0, 1) when no process group is initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        if group is not None:
            raise CrossentError(
                "group was given but torch.distributed is not initialised "
                "(call torch.distributed.init_process_group first)"
            )
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _options_code(*options: object) -> int:
    """A checksum of the options, identical on every rank that passed the same ones."""
    return zlib.crc32(repr(options).encode())


@overload
def sharded_cross_entropy(
    hidden: Tensor, weight_shard: Tensor, target: Tensor, *, group: Any = ...,
    shard_offset: int, bias_shard: Tensor | None = ..., ignore_index: int = ...,
    label_smoothing: float = ..., smoothing: Smoothing = ..., reduction: Reduction = ...,
    base: Base = ..., chunk_size: int | None = ..., z_loss: float = ...,
    softcap: float | None = ..., return_lse: Literal[False] = ...,
) -> Tensor: ...


@overload
def sharded_cross_entropy(
    hidden: Tensor, weight_shard: Tensor, target: Tensor, *, group: Any = ...,
    shard_offset: int, bias_shard: Tensor | None = ..., ignore_index: int = ...,
    label_smoothing: float = ..., smoothing: Smoothing = ..., reduction: Reduction = ...,
    base: Base = ..., chunk_size: int | None = ..., z_loss: float = ...,
    softcap: float | None = ..., return_lse: Literal[True],
) -> tuple[Tensor, Tensor]: ...


def sharded_cross_entropy(
    hidden: Tensor,
    weight_shard: Tensor,
    target: Tensor,
    *,
    group: Any = None,
    shard_offset: int,
    bias_shard: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing: Smoothing = "uniform",
    reduction: Reduction = "mean",
    base: Base = "nats",
    chunk_size: int | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Linear cross-entropy over a catalogue split across the ranks of a process group.

    Rank r holds rows ``[shard_offset, shard_offset + V_r)`` of the output weight; the shards of
    all ranks, taken together, tile ``[0, V)`` with no gap or overlap (any order, uneven sizes,
    empty shards allowed). ``hidden`` and ``target`` are the same on every rank.

    Shapes:
        hidden (..., D) float, weight_shard (V_r, D), bias_shard (V_r,), target (...) integer
        class indices in ``[0, V)`` or ``ignore_index``. Result: a scalar, or (...) for
        ``reduction="none"``; the same on every rank.

    .. math::
        z = h W^\top + b,\qquad
        \ell_i = -\sum_c t_{ic} \log \operatorname{softmax}(z_i)_c,\qquad
        \log \textstyle\sum_c e^{z_{ic}} = M_i + \log \sum_r e^{\mathrm{lse}_{ir} - M_i},\;
        M_i = \max_r \mathrm{lse}_{ir}

    with t the smoothed one-hot target exactly as in :func:`crossent.cross_entropy`, and
    ``z_loss`` / ``softcap`` / ``return_lse`` as there (``z -> cap tanh(z / cap)`` first; plus
    ``c lse_i^2`` per non-ignored row; the global log-sum-exp, without gradient).

    Communication per call: one all-gather of 8 integers per rank (input checks), a MAX
    all-reduce of N numbers and a SUM all-reduce of 3N numbers in the forward pass; one SUM
    all-reduce of N x D numbers (the gradient of ``hidden``) in the backward pass. Nothing of
    size V is ever sent. Each rank's memory is its shard (V_r x D, and its gradient) plus one
    block of about 4M logits (``chunk_size`` rows by as many classes as fit).

    Args:
        hidden: (..., D) input vectors, identical on every rank.
        weight_shard: (V_r, D) this rank's rows of the output weight.
        target: (...) class indices (global), identical on every rank.
        group: the process group (default: the world). Without an initialised process group
            the call runs as a world of one (then ``shard_offset`` is 0 and the shard is all).
        shard_offset: the global index of this rank's first row.
        bias_shard: (V_r,) this rank's slice of the output bias.
        ignore_index: target value whose rows contribute 0 and are left out of the mean.
        label_smoothing: ε in [0, 1].
        smoothing: ``"uniform"`` (ε spread over all V classes, PyTorch's choice) or
            ``"off_target"`` (over the V - 1 wrong ones).
        reduction: ``"mean"`` over non-ignored rows (0 with zero gradient when there are
            none), ``"sum"`` or ``"none"``.
        base: ``"nats"``, ``"bits"`` or a number > 1; the loss is divided by ln(base).
        chunk_size: rows per block of logits (default: at least 256, more for small shards);
            the shard's classes are blocked too, so one block holds about 4M logits.
        z_loss: coefficient ``c >= 0`` of the z-loss ``c lse^2``.
        softcap: soft-cap of the logits, or None.
        return_lse: also return the (...) per-row log-sum-exp (nats).

    Returns:
        The loss, the same value on every rank; with ``return_lse``, ``(loss, lse)``.

    Raises:
        CrossentError: bad shapes, dtypes, devices or options; non-finite input; shards that do
            not tile ``[0, V)``; row counts or widths of ``hidden``, ``target`` or options that
            differ between ranks; a target outside ``[0, V)``. (The values of ``hidden`` are
            not compared across ranks: that would cost an all-gather of N x D numbers.)
            Every rank raises (no rank is left waiting in a collective); the rank whose
            input is wrong says exactly what is wrong.

    Example (under ``torchrun --nproc-per-node 2``)::

        rank, world = dist.get_rank(), dist.get_world_size()
        start, stop = shard_range(num_videos, rank, world)
        weight_shard = torch.nn.Parameter(full_weight_init[start:stop])
        loss = sharded_cross_entropy(user_vectors, weight_shard, next_video,
                                     shard_offset=start)
        loss.backward()  # user_vectors.grad is the full gradient on every rank
    """
    rank, world_size = _group_info(group)
    local_error = check_options(ignore_index, label_smoothing, smoothing, reduction, chunk_size)
    divisor = 1.0
    try:
        divisor = log_divisor(base)
    except CrossentError as error:
        local_error = local_error or str(error)
    local_error = local_error or check_local_inputs(
        hidden, weight_shard, target, bias_shard, shard_offset
    )
    try:
        z_loss, softcap, return_lse = check_fused_options(z_loss, softcap, return_lse)
    except CrossentError as error:
        local_error = local_error or str(error)

    record = [1, 0, 0, 0, 0, 0, 0, 0]
    if local_error is None:
        options = _options_code(
            ignore_index, float(label_smoothing), smoothing, reduction, divisor, z_loss, softcap)
        record = [
            0, shard_offset, weight_shard.shape[0], target.numel(), hidden.shape[-1],
            _checksum(target), options, 0,
        ]
    records = _exchange(record, group, world_size)
    num_classes = check_layout(records, rank, local_error)

    flat_target = target.reshape(-1).to(torch.int64)  # (N,)
    valid = flat_target != ignore_index
    outside = valid & ((flat_target < 0) | (flat_target >= num_classes))
    if bool(outside.any()):
        index = int(outside.nonzero()[0, 0])
        raise CrossentError(
            f"target[{index}] = {int(flat_target[index])} is outside [0, {num_classes}) "
            f"(V = {num_classes} classes over {world_size} shard(s))"
        )
    if chunk_size is None:  # enough rows that the shard is streamed few times per call
        chunk_size = max(_MIN_CHUNK_ROWS, _CHUNK_ELEMENTS // max(weight_shard.shape[0], 1))
    plan = ShardPlan(
        group=group,
        world_size=world_size,
        shard_offset=shard_offset,
        num_classes=num_classes,
        ignore_index=ignore_index,
        label_smoothing=float(label_smoothing),
        smoothing=smoothing,
        reduction=reduction,
        divisor=divisor,
        chunk_size=chunk_size,
        block_elements=_CHUNK_ELEMENTS,
        z_loss=z_loss,
        softcap=softcap,
    )
    flat_hidden = hidden.reshape(flat_target.shape[0], hidden.shape[-1])  # (N, D)
    loss, lse = ShardedCrossEntropyFunction.apply(
        flat_hidden, weight_shard, bias_shard, flat_target, plan
    )
    if reduction == "none":
        loss = loss.reshape(target.shape)
    return (loss, lse.reshape(target.shape)) if return_lse else loss


def _checksum(target: Tensor) -> int:
    """A position-weighted sum of the targets: differs when two ranks pass different targets."""
    flat = target.reshape(-1).to(torch.int64)
    if flat.numel() == 0:
        return 0
    position = torch.arange(flat.numel(), device=flat.device) % 1_000_003 + 1
    return int((flat * position).sum().item())


def _collective_device(group: Any, world_size: int) -> torch.device:
    """Where small bookkeeping tensors must live for the group's backend (CUDA for nccl)."""
    if world_size > 1 and dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _exchange(record: list[int], group: Any, world_size: int) -> list[list[int]]:
    """All-gather one small integer record per rank."""
    if world_size == 1:
        return [record]
    device = _collective_device(group, world_size)
    mine = torch.tensor(record, dtype=torch.int64, device=device)
    gathered = [torch.empty_like(mine) for _ in range(world_size)]
    dist.all_gather(gathered, mine, group=group)
    return [item.tolist() for item in gathered]


def gather_shards(
    weight_shard: Tensor, *, shard_offset: int, group: Any = None, dst: int = 0
) -> Tensor | None:
    """Concatenate every rank's shard, in order of ``shard_offset``, on rank ``dst``.

    Shards may differ in size; they are padded to the largest for the collective. For
    checkpoints: the full (V, ...) table is saved by one process and loads on one process.

    Returns:
        On rank ``dst`` the full (V, ...) tensor, elsewhere ``None``. Without an initialised
        process group, a copy of the shard itself.
    """
    rank, world_size = _group_info(group)
    if world_size == 1:
        return weight_shard.detach().clone()
    shard = weight_shard.detach().contiguous()
    layout = _exchange([shard_offset, shard.shape[0]], group, world_size)
    largest = max(count for _, count in layout)
    padded = torch.zeros((largest, *shard.shape[1:]), dtype=shard.dtype, device=shard.device)
    padded[: shard.shape[0]] = shard
    dst_global = dst if group is None else dist.get_global_rank(group, dst)
    buffers = [torch.empty_like(padded) for _ in range(world_size)] if rank == dst else None
    dist.gather(padded, gather_list=buffers, dst=dst_global, group=group)
    if buffers is None:
        return None
    order = sorted(range(world_size), key=lambda r: layout[r][0])
    return torch.cat([buffers[r][: layout[r][1]] for r in order])
