"""Worker processes for tests/distributed/test_distributed.py (spawned; not a test module itself).

Each rank builds the same full problem from a seed, keeps only its shard of the weight, runs
``sharded_cross_entropy`` and compares loss and gradients with the materialised-logits reference
(``torch.nn.functional.cross_entropy`` in float64, or the smoothed-target formula written from
its definition for off-target smoothing). Results go to ``<out_dir>/rank<r>.pt``.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import crossent.distributed
from crossent.distributed import (
    copy_to_shards,
    gather_rows,
    gather_shards,
    shard_range,
    sharded_cross_entropy,
    sum_from_shards,
)
from crossent.errors import CrossentError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry(rank: int, fn: Callable[..., Any], world_size: int, port: int, out_dir: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        result = fn(rank, world_size)
    except BaseException:  # report the traceback to the parent instead of hanging it
        result = {"crash": traceback.format_exc()}
    partial = Path(out_dir) / f"rank{rank}.pt.partial"
    torch.save(result, partial)
    partial.replace(Path(out_dir) / f"rank{rank}.pt")  # complete, or absent
    dist.barrier()  # no rank tears the gloo group down while another still uses it
    dist.destroy_process_group()


def spawn_world(
    fn: Callable[[int, int], Any], world_size: int, out_dir: Path, timeout: float = 120.0
) -> list[Any]:
    """Run ``fn(rank, world_size)`` in ``world_size`` gloo processes; return each rank's result."""
    context = mp.start_processes(
        _entry,
        args=(fn, world_size, free_port(), str(out_dir)),
        nprocs=world_size,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                raise TimeoutError(f"{world_size} gloo processes did not finish in {timeout} s")
    except mp.ProcessExitedException:
        # A rank killed by a signal after every rank saved its result died in the process
        # group's teardown ("terminate called without an active exception"), not in the code
        # under test; without every result file the crash stands.
        if not all((out_dir / f"rank{rank}.pt").exists() for rank in range(world_size)):
            raise
    results = [torch.load(out_dir / f"rank{rank}.pt") for rank in range(world_size)]
    for rank, result in enumerate(results):
        if isinstance(result, dict) and "crash" in result:
            raise RuntimeError(f"rank {rank} crashed:\n{result['crash']}")
    return results


@dataclass(frozen=True)
class Case:
    name: str
    reduction: str = "mean"
    layout: str = "even"  # "even" (shard_range) or "uneven" (odd sizes, empty shard, permuted)
    ignored: float = 0.0  # fraction of rows whose target is ignore_index
    label_smoothing: float = 0.0
    smoothing: str = "uniform"
    bias: bool = False
    base: str = "nats"
    dtype: torch.dtype = torch.float64
    chunk_size: int | None = None
    shape: tuple[int, ...] = (29,)  # leading shape of hidden (rows)
    block_elements: int | None = None  # small: many class blocks per row block
    classes: int = 31
    width: int = 7
    z_loss: float = 0.0
    softcap: float | None = None


CASES = [
    Case("mean_even"),
    Case("sum_uneven_with_ignored_rows", reduction="sum", layout="uneven", ignored=0.3),
    Case("none_uneven_uniform_smoothing", reduction="none", layout="uneven", label_smoothing=0.2),
    Case(
        "mean_off_target_smoothing_in_bits_with_bias",
        label_smoothing=0.15, smoothing="off_target", bias=True, base="bits", ignored=0.2,
    ),
    Case("mean_uneven_bias_small_chunks", layout="uneven", bias=True, chunk_size=4, ignored=0.1),
    Case(
        "sum_row_and_class_blocks_with_smoothing", reduction="sum", layout="uneven", bias=True,
        chunk_size=4, block_elements=24, label_smoothing=0.3, smoothing="off_target",
        ignored=0.1,
    ),
    Case("mean_all_rows_ignored", ignored=1.0),
    Case("none_three_dim_hidden", reduction="none", shape=(3, 5), layout="uneven", ignored=0.2),
    Case(
        "float32_mean_uneven_smoothing",
        dtype=torch.float32, layout="uneven", label_smoothing=0.1, bias=True, ignored=0.2,
        shape=(64,), classes=300, width=16, chunk_size=16,
    ),
    Case("mean_uneven_z_loss_softcap_bias", layout="uneven", bias=True, ignored=0.2,
         z_loss=0.03, softcap=2.5),
    Case(
        "none_blocks_z_loss_softcap_smoothing", reduction="none", layout="uneven", bias=True,
        chunk_size=4, block_elements=24, label_smoothing=0.2, smoothing="off_target",
        ignored=0.1, z_loss=0.01, softcap=4.0,
    ),
]

_DEFAULT_BLOCK = crossent.distributed.sharded._CHUNK_ELEMENTS

TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5}


def uneven_range(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """Uneven shards in reversed order: rank 0 owns the last 2 classes, the middle rank of three
    owns none, the last rank owns the rest from 0."""
    if rank == 0:
        return num_classes - 2, num_classes
    if world_size == 3 and rank == 1:
        return 0, 0
    return 0, num_classes - 2


def make_problem(case: Case, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*case.shape, case.width, generator=generator, dtype=torch.float64)
    weight = torch.randn(case.classes, case.width, generator=generator, dtype=torch.float64)
    bias = torch.randn(case.classes, generator=generator, dtype=torch.float64)
    target = torch.randint(0, case.classes, case.shape, generator=generator)
    ignored = torch.rand(case.shape, generator=generator) < case.ignored
    target[ignored] = -100
    return {"hidden": hidden, "weight": weight, "bias": bias, "target": target}


def reference_loss(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, target: torch.Tensor,
    case: Case,
) -> torch.Tensor:
    """Materialised logits through PyTorch (uniform smoothing) or the definition (off-target),
    soft-capped first and plus ``z_loss * lse^2`` on the rows that are not ignored."""
    logits = hidden.reshape(-1, hidden.shape[-1]) @ weight.T  # (N, V)
    if bias is not None:
        logits = logits + bias
    if case.softcap is not None:
        logits = case.softcap * torch.tanh(logits / case.softcap)
    flat_target = target.reshape(-1)
    divisor = torch.log(torch.tensor(2.0, dtype=torch.float64)) if case.base == "bits" else 1.0
    if case.smoothing == "uniform":
        per_row = F.cross_entropy(
            logits, flat_target, reduction="none", label_smoothing=case.label_smoothing
        )
    else:  # t = (1 - ε) on the label, ε / (V - 1) on every other class
        valid = flat_target != -100
        eps, classes = case.label_smoothing, logits.shape[1]
        probs_target = torch.full_like(logits, eps / (classes - 1))
        probs_target[torch.arange(len(flat_target)), flat_target.clamp(min=0)] = 1.0 - eps
        per_row = -(probs_target * torch.log_softmax(logits, dim=1)).sum(dim=1) * valid
    lse = torch.logsumexp(logits, dim=1)
    per_row = per_row + torch.where(flat_target != -100, case.z_loss * lse**2, 0.0)
    per_row = per_row / divisor
    if case.reduction == "none":
        return per_row.reshape(target.shape)
    if case.reduction == "sum":
        return per_row.sum()
    count = (flat_target != -100).sum()
    return per_row.sum() / count if count > 0 else per_row.sum() * 0.0


def reference_logits(problem: dict[str, torch.Tensor], case: Case) -> torch.Tensor:
    """The (soft-capped) logits of the full problem, (N, V) float64."""
    logits = problem["hidden"].reshape(-1, case.width) @ problem["weight"].T
    if case.bias:
        logits = logits + problem["bias"]
    return logits if case.softcap is None else case.softcap * torch.tanh(logits / case.softcap)


def _max_diff(ours: torch.Tensor | None, reference: torch.Tensor | None) -> float:
    if ours is None or reference is None:
        return 0.0 if ours is None and reference is None else float("inf")
    difference = (ours.detach().double() - reference.detach().double()).abs()
    return float(difference.max()) if difference.numel() else 0.0


def run_case(case: Case, rank: int, world_size: int) -> dict[str, float]:
    problem = make_problem(case)
    layout = uneven_range if case.layout == "uneven" else shard_range
    start, stop = layout(case.classes, rank, world_size)
    # reference: the full problem in float64 (the same on every rank)
    hidden_ref = problem["hidden"].clone().requires_grad_(True)
    weight_ref = problem["weight"].clone().requires_grad_(True)
    bias_ref = problem["bias"].clone().requires_grad_(True) if case.bias else None
    loss_ref = reference_loss(hidden_ref, weight_ref, bias_ref, problem["target"], case)
    upstream = torch.linspace(0.5, 1.5, loss_ref.numel(), dtype=torch.float64).reshape(
        loss_ref.shape
    )
    grads_ref = torch.autograd.grad(
        loss_ref, [t for t in (hidden_ref, weight_ref, bias_ref) if t is not None], upstream
    )
    # ours: this rank's shard only, in the case's dtype
    hidden = problem["hidden"].to(case.dtype).requires_grad_(True)
    weight_shard = problem["weight"][start:stop].to(case.dtype).requires_grad_(True)
    bias_shard = problem["bias"][start:stop].to(case.dtype).requires_grad_(True)
    if case.block_elements is not None:  # classes in blocks of block_elements // chunk_size
        crossent.distributed.sharded._CHUNK_ELEMENTS = case.block_elements
    loss = sharded_cross_entropy(
        hidden,
        weight_shard,
        problem["target"],
        shard_offset=start,
        bias_shard=bias_shard if case.bias else None,
        label_smoothing=case.label_smoothing,
        smoothing=case.smoothing,  # type: ignore[arg-type]
        reduction=case.reduction,  # type: ignore[arg-type]
        base=case.base,  # type: ignore[arg-type]
        chunk_size=case.chunk_size,
        z_loss=case.z_loss,
        softcap=case.softcap,
        return_lse=True,
    )
    loss, lse = loss
    inputs = [hidden, weight_shard] + ([bias_shard] if case.bias else [])
    grads = torch.autograd.grad(loss, inputs, upstream.to(case.dtype))
    crossent.distributed.sharded._CHUNK_ELEMENTS = _DEFAULT_BLOCK
    diffs = {
        "loss": _max_diff(loss, loss_ref),
        "grad_hidden": _max_diff(grads[0], grads_ref[0]),
        "grad_weight_shard": _max_diff(grads[1], grads_ref[1][start:stop]),
        "loss_scale": float(loss_ref.detach().abs().max()),
        "lse": _max_diff(lse.reshape(-1), torch.logsumexp(
            reference_logits(problem, case), dim=1)),
    }
    if case.bias:
        diffs["grad_bias_shard"] = _max_diff(grads[2], grads_ref[2][start:stop])
    return diffs


def equivalence_worker(rank: int, world_size: int) -> dict[str, Any]:
    results: dict[str, Any] = {case.name: run_case(case, rank, world_size) for case in CASES}
    results["errors"] = error_messages(rank, world_size)
    # the shards of an uneven, permuted layout come back whole and in class order on rank 0
    full = make_problem(CASES[0])["weight"]
    start, stop = uneven_range(full.shape[0], rank, world_size)
    gathered = gather_shards(full[start:stop], shard_offset=start)
    results["gathered"] = None if gathered is None else bool(torch.equal(gathered, full))
    results["glue"] = glue_checks(rank, world_size)
    return results


def glue_checks(rank: int, world_size: int) -> dict[str, bool]:
    """gather_rows, copy_to_shards and sum_from_shards against their definitions."""
    counts = [3, 0, 2][:world_size] if world_size == 3 else [3, 1]
    everything = torch.arange(sum(counts) * 2, dtype=torch.float64).reshape(-1, 2)
    start = sum(counts[:rank])
    local = everything[start : start + counts[rank]].clone().requires_grad_(True)
    gathered = gather_rows(local, counts)
    weights = torch.arange(gathered.numel(), dtype=torch.float64).reshape(gathered.shape)
    (gathered * weights).sum().backward()  # the same loss on every rank
    assert local.grad is not None
    # copy_to_shards then a rank-dependent computation then sum_from_shards:
    # total = sum_r (r + 1) * x, so d total / d x = sum_r (r + 1) on every rank
    replicated = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    total = sum_from_shards(copy_to_shards(replicated) * (rank + 1))
    total.backward()
    expected = world_size * (world_size + 1) / 2
    return {
        "gather_forward": bool(torch.equal(gathered.detach(), everything)),
        "gather_backward": bool(torch.equal(local.grad, weights[start : start + counts[rank]])),
        "sum_forward": float(total.detach()) == 2.0 * expected,
        "copy_backward": float(replicated.grad) == expected if replicated.grad is not None
        else False,
    }


def _message(call: Callable[[], Any]) -> str:
    try:
        call()
    except CrossentError as error:
        return str(error)
    return "<no error>"


def error_messages(rank: int, world_size: int) -> dict[str, str]:
    """Each bad call must raise CrossentError on every rank, leaving the group usable."""
    classes, width = 10, 4
    hidden = torch.randn(6, width, dtype=torch.float64)
    target = torch.tensor([0, 3, 9, 2, -100, 5])
    start, stop = shard_range(classes, rank, world_size)
    weight = torch.randn(stop - start, width, dtype=torch.float64)
    messages: dict[str, str] = {}

    def call(**overrides: Any) -> Callable[[], Any]:
        arguments: dict[str, Any] = {
            "hidden": hidden, "weight_shard": weight, "target": target, "shard_offset": start,
        }
        arguments.update(overrides)
        return lambda: sharded_cross_entropy(
            arguments.pop("hidden"), arguments.pop("weight_shard"), arguments.pop("target"),
            **arguments,
        )

    last = world_size - 1
    messages["overlap"] = _message(call(shard_offset=max(start - 1, 0)))
    messages["gap"] = _message(call(shard_offset=start + (1 if rank == last else 0)))
    messages["target_outside"] = _message(call(target=torch.tensor([0, 3, 10, 2, -100, 5])))
    wrong_width = torch.randn(stop - start, width + 1, dtype=torch.float64)
    messages["bad_width_on_last_rank"] = _message(
        call(weight_shard=wrong_width if rank == last else weight)
    )
    other_target = target.clone()
    other_target[1] = 4
    messages["target_differs"] = _message(call(target=other_target if rank == last else target))
    messages["rows_differ"] = _message(
        call(hidden=hidden[:5] if rank == last else hidden, target=target[:5] if rank == last
             else target)
    )
    messages["options_differ"] = _message(call(label_smoothing=0.1 if rank == last else 0.0))
    # the group still works after all those errors
    loss = sharded_cross_entropy(hidden, weight, target, shard_offset=start)
    messages["after_errors_loss"] = f"{float(loss):.12f}"
    return messages


if __name__ == "__main__":  # pragma: no cover - by hand: tests/distributed/_sharded_workers.py
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        print(spawn_world(equivalence_worker, 2, Path(folder)))
