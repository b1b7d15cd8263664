"""Input checks for :func:`crossent.distributed.sharded_cross_entropy`.

A rank that raised before a collective would leave the others waiting in it forever, so the local
checks *return* their message instead of raising; every rank then shares a small record (error
flag, shard offset and size, row count, width, target checksum, options checksum) and
:func:`check_layout` raises on every rank at once. The rules themselves are those of
:mod:`crossent._validation`, with the same messages as everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from crossent._validation import masks
from crossent._validation.choices import Reduction, Smoothing, check_choice
from crossent._validation.numbers import check_int, check_number
from crossent._validation.offender import row_message
from crossent.errors import CrossentError

# positions in the record every rank shares
ERROR, OFFSET, SIZE, ROWS, WIDTH, TARGET_SUM, OPTIONS = range(7)


def first_problem(*checks: Callable[[], object]) -> str | None:
    """The message of the first check that raises CrossentError, or None: a rank must not
    raise before the collective that tells the other ranks."""
    for check in checks:
        try:
            check()
        except CrossentError as error:
            return str(error)
    return None


def check_options(
    ignore_index: object,
    label_smoothing: object,
    smoothing: object,
    reduction: object,
    chunk_size: object,
) -> str | None:
    """The first problem with the scalar options, or None."""
    return first_problem(
        lambda: check_int(ignore_index, "ignore_index"),
        lambda: check_number(label_smoothing, "label_smoothing", low=0.0, high=1.0),
        lambda: check_choice(smoothing, "smoothing", Smoothing),
        lambda: check_choice(reduction, "reduction", Reduction),
        lambda: chunk_size is None or check_int(chunk_size, "chunk_size", low=1, none_ok=True),
    )


def _first_non_finite_row(values: Tensor, block_elements: int = 1 << 20) -> int | None:
    """Index of the first row holding a NaN or infinity, or None.

    In blocks of rows: the mask of a whole (V_r, D) shard would cost a large temporary.
    """
    values = values.reshape(values.shape[0], -1)  # (rows, width)
    block = max(1, block_elements // max(values.shape[1], 1))
    for start in range(0, values.shape[0], block):
        bad = masks.not_finite(values[start : start + block])
        if masks.any_true(bad):
            return start + masks.first_true(bad)[0]
    return None


def _non_finite_row_message(values: Tensor, name: str, offset: int | None = None) -> str | None:
    """``weight_shard row 3 (class 3) is not finite: weight_shard[3, 0] = inf``, or None."""
    row = _first_non_finite_row(values)
    if row is None:
        return None
    column = masks.first_true(masks.not_finite(values[row : row + 1].reshape(-1)))
    position = (row, *column) if values.dim() > 1 else (row,)
    value = float(values.reshape(values.shape[0], -1)[row, column[0]])
    problem = f"(class {offset + row}) is not finite" if offset is not None else "is not finite"
    return row_message(name, position, value, problem)


def check_local_inputs(
    hidden: object,
    weight_shard: object,
    target: object,
    bias_shard: object,
    shard_offset: object,
) -> str | None:
    """The first problem with this rank's tensors, or None."""
    problem = first_problem(lambda: check_int(shard_offset, "shard_offset", low=0))
    if problem is not None:
        return problem
    offset = int(shard_offset)  # type: ignore[call-overload]
    if not isinstance(hidden, Tensor) or not hidden.is_floating_point() or hidden.dim() < 1:
        return f"hidden must be a floating-point tensor of shape (..., D), got {_describe(hidden)}"
    if not isinstance(weight_shard, Tensor) or weight_shard.dim() != 2:
        return f"weight_shard must be a 2-D tensor (V_r, D), got {_describe(weight_shard)}"
    if weight_shard.shape[1] != hidden.shape[-1]:
        return (
            f"weight_shard has shape {tuple(weight_shard.shape)} but hidden has D = "
            f"{hidden.shape[-1]} columns; expected ({weight_shard.shape[0]}, {hidden.shape[-1]})"
        )
    if weight_shard.dtype != hidden.dtype or weight_shard.device != hidden.device:
        return (
            f"weight_shard is {weight_shard.dtype} on {weight_shard.device} but hidden is "
            f"{hidden.dtype} on {hidden.device}; they must match"
        )
    if bias_shard is not None:
        if not isinstance(bias_shard, Tensor) or tuple(bias_shard.shape) != (
            weight_shard.shape[0],
        ):
            return (
                f"bias_shard must have shape ({weight_shard.shape[0]},) (one per row of "
                f"weight_shard), got {_describe(bias_shard)}"
            )
        if bias_shard.dtype != hidden.dtype or bias_shard.device != hidden.device:
            return f"bias_shard is {bias_shard.dtype} on {bias_shard.device}; expected " \
                f"{hidden.dtype} on {hidden.device} like hidden"
    if (
        not isinstance(target, Tensor)
        or target.is_floating_point()
        or target.is_complex()
        or target.dtype == torch.bool
    ):
        return f"target must hold class indices in an integer tensor, got {_describe(target)}"
    if tuple(target.shape) != tuple(hidden.shape[:-1]):
        return (
            f"target has shape {tuple(target.shape)} but hidden has shape "
            f"{tuple(hidden.shape)}; expected target shape {tuple(hidden.shape[:-1])}"
        )
    if target.device != hidden.device:
        return f"target is on {target.device} but hidden is on {hidden.device}"
    rows = math.prod(hidden.shape[:-1])
    problem = None
    if rows > 0:
        problem = _non_finite_row_message(hidden.detach().reshape(rows, -1), "hidden")
    if problem is None and weight_shard.shape[0] > 0:
        problem = _non_finite_row_message(weight_shard.detach(), "weight_shard", offset)
    if problem is None and isinstance(bias_shard, Tensor) and weight_shard.shape[0] > 0:
        problem = _non_finite_row_message(bias_shard.detach(), "bias_shard")
    return problem


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return repr(value) if not hasattr(value, "shape") else f"{type(value).__name__}"


def check_layout(records: list[list[int]], rank: int, local_error: str | None) -> int:
    """Raise on every rank if any rank's input is bad; return the total number of classes V."""
    many = len(records) > 1
    if local_error is not None:
        raise CrossentError(f"rank {rank}: {local_error}" if many else local_error)
    for other, record in enumerate(records):
        if record[ERROR]:
            raise CrossentError(
                f"rank {other} rejected its input to sharded_cross_entropy "
                "(the error on that rank says why)"
            )
    first = records[0]
    for other, record in enumerate(records[1:], start=1):
        if record[OPTIONS] != first[OPTIONS]:
            raise CrossentError(
                f"rank {other} passed different options (ignore_index, label_smoothing, "
                "smoothing, reduction, base) than rank 0; every rank must pass the same"
            )
        if record[ROWS] != first[ROWS] or record[WIDTH] != first[WIDTH]:
            raise CrossentError(
                f"hidden has {record[ROWS]} rows of width {record[WIDTH]} on rank {other} but "
                f"{first[ROWS]} rows of width {first[WIDTH]} on rank 0; every rank must pass "
                "the same rows"
            )
        if record[TARGET_SUM] != first[TARGET_SUM]:
            raise CrossentError(
                f"target on rank {other} differs from target on rank 0; every rank must pass "
                "the same target"
            )
    return _tile(records)


def _tile(records: list[list[int]]) -> int:
    """Check that the non-empty shards tile [0, V) exactly; return V."""
    shards = sorted(
        (record[OFFSET], record[SIZE], rank)
        for rank, record in enumerate(records)
        if record[SIZE] > 0
    )
    covered, previous = 0, None
    for offset, size, rank in shards:
        if offset > covered:
            raise CrossentError(
                f"shard_offset = {offset} on rank {rank} leaves classes [{covered}, {offset}) "
                "in no shard; the shards must tile [0, V) without gaps"
            )
        if offset < covered and previous is not None:
            prev_offset, prev_size, prev_rank = previous
            raise CrossentError(
                f"shard of rank {rank} [{offset}, {offset + size}) overlaps shard of rank "
                f"{prev_rank} [{prev_offset}, {prev_offset + prev_size}) "
                "(inconsistent shard_offset)"
            )
        covered = offset + size
        previous = (offset, size, rank)
    if covered == 0:
        raise CrossentError("every weight_shard is empty: the catalogue has no classes")
    return covered
