"""Per-rank peak memory of the catalogue-sharded softmax vs the unsharded one.

For each catalogue size V and each number of ranks R, R gloo processes on 127.0.0.1 each hold a
(V / R, D) float32 slice of the output weight and run one forward + backward of
``crossent.distributed.sharded_cross_entropy`` on the same (N, D) batch. The unsharded anchor
runs in one process without a process group: ``crossent.linear_cross_entropy`` when it is
available (the chunked unsharded kernel), and always the naive materialised-logits
``torch.nn.functional.cross_entropy(hidden @ weight.T, target)``.

Memory is each process's peak resident set size (``VmHWM``, reset just before the tensors are
made, after ``import torch`` and the process-group set-up) minus its RSS at that moment, with
glibc's mmap threshold fixed (``MALLOC_MMAP_THRESHOLD_``) so freed tensors leave the RSS; the
number is what
the loss itself costs: the weight shard, its gradient and one chunk of logits. The table shows the
largest rank's figure and its ratio to the unsharded chunked loss (ideal: 1 / R).

    .venv/bin/python benchmarks/bench_sharded.py                      # V = 100k, 400k, 1.6M
    .venv/bin/python benchmarks/bench_sharded.py --classes 100000 --ranks 1 2 --plot mem.png
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from crossent import benchmarking as _benchmarks

MIB = 1024 * 1024


def _rss_bytes(field: str = "VmRSS") -> int:
    """Resident set size (``VmRSS``) or its peak since the last reset (``VmHWM``), in bytes."""
    value = _benchmarks.status_bytes(field)
    if value is not None:
        return value
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: the lifetime peak
    return peak if sys.platform == "darwin" else peak * 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _step(method: str, classes: int, rows: int, width: int, rank: int,
          world: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One forward + backward of ``method``; returns the loss, this rank's weight shard and
    the seconds the loss and its backward took (making the inputs not counted)."""
    import crossent
    from crossent.distributed import shard_range, sharded_cross_entropy

    torch.manual_seed(rank)
    start, stop = shard_range(classes, rank, world)
    weight = torch.randn(stop - start, width).mul_(width**-0.5).requires_grad_(True)
    hidden = torch.randn(rows, width, generator=torch.Generator().manual_seed(0))
    hidden.requires_grad_(True)
    target = torch.randint(0, classes, (rows,), generator=torch.Generator().manual_seed(1))
    began = time.perf_counter()
    if method == "sharded":
        loss = sharded_cross_entropy(hidden, weight, target, shard_offset=start)
    elif method == "linear_cross_entropy":
        loss = crossent.linear_cross_entropy(hidden, weight, target)  # type: ignore[attr-defined]
    else:  # materialised (N, V) logits
        loss = torch.nn.functional.cross_entropy(hidden @ weight.T, target)
    loss.backward()
    return loss, weight, time.perf_counter() - began


def _measure(method: str, classes: int, rows: int, width: int, rank: int, world: int) -> dict:
    """One forward + backward; returns peak memory above the starting RSS and the time.

    A tiny warm-up step first loads whatever the method loads once per process (crossent's
    lazy imports, numba and its cached kernels), so that one-time cost is not counted."""
    _step(method, 4 * world, 2, width, rank, world)
    _benchmarks.reset_peak_rss()
    baseline = _rss_bytes()
    loss, weight, seconds = _step(method, classes, rows, width, rank, world)
    return {
        "peak_mib": (_rss_bytes("VmHWM") - baseline) / MIB,
        "weight_mib": weight.numel() * 4 / MIB,
        "seconds": seconds,
        "loss": float(loss.detach()),
    }


def _rank_main(rank: int, job: dict[str, Any], port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    world = job["ranks"]
    if world > 1:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
            timeout=datetime.timedelta(minutes=10),
        )
    result = _measure(job["method"], job["classes"], job["rows"], job["width"], rank, world)
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    if world > 1:
        dist.destroy_process_group()


def run_job(job: dict[str, Any]) -> list[dict]:
    """Run one configuration in fresh processes (fresh processes: a clean peak RSS)."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(
            _rank_main, args=(job, _free_port(), out_dir), nprocs=job["ranks"],
            start_method="spawn",
        )
        return [torch.load(Path(out_dir) / f"rank{r}.pt") for r in range(job["ranks"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[100_000, 400_000, 1_600_000])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rows", type=int, default=128, help="batch rows N")
    parser.add_argument("--width", type=int, default=64, help="embedding width D")
    parser.add_argument("--naive-max", type=int, default=400_000,
                        help="skip the materialised-logits anchor above this V")
    parser.add_argument("--plot", type=Path, default=None, help="save a PNG of memory vs V")
    args = parser.parse_args()
    # glibc keeps freed large blocks in its heap once it has raised its mmap threshold; a fixed
    # threshold returns every tensor's memory on free, so RSS follows the live tensors
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")

    import crossent

    anchors = ["materialised"]
    if hasattr(crossent, "linear_cross_entropy"):
        anchors.insert(0, "linear_cross_entropy")
    jobs = []
    for classes in args.classes:
        for method in anchors:
            if method == "materialised" and classes > args.naive_max:
                continue
            jobs.append({"method": method, "ranks": 1, "classes": classes})
        jobs += [{"method": "sharded", "ranks": r, "classes": classes} for r in args.ranks]
    for job in jobs:
        job.update(rows=args.rows, width=args.width)

    console = Console(width=150)
    results = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("configurations", total=len(jobs))
        for job in jobs:
            progress.update(task, description=f"{job['method']} V={job['classes']:,} "
                            f"R={job['ranks']}")
            results.append((job, run_job(job)))
            progress.advance(task)

    table = Table(title=f"Per-rank peak memory above baseline, one fwd+bwd, N={args.rows}, "
                  f"D={args.width}, float32, gloo on 127.0.0.1")
    for column in ("V", "method", "ranks", "weight shard MiB", "peak MiB (max rank)",
                   "vs unsharded", "ideal 1/R", "seconds (max rank)"):
        table.add_column(column, justify="right")
    reference_method = anchors[0] if anchors[0] != "materialised" else "sharded"
    for classes in args.classes:
        rows = [(job, ranks) for job, ranks in results if job["classes"] == classes]
        reference = next(
            (max(r["peak_mib"] for r in ranks) for job, ranks in rows
             if job["method"] == reference_method and job["ranks"] == 1), None,
        )
        for job, ranks in rows:
            peak = max(r["peak_mib"] for r in ranks)
            table.add_row(
                f"{classes:,}", job["method"], str(job["ranks"]),
                f"{max(r['weight_mib'] for r in ranks):,.1f}", f"{peak:,.1f}",
                f"{peak / reference:.2f}" if reference else "-",
                f"{1 / job['ranks']:.2f}", f"{max(r['seconds'] for r in ranks):.2f}",
            )
    console.print(table)
    losses = {(job["classes"], job["method"], job["ranks"]): ranks[0]["loss"]
              for job, ranks in results}
    console.print("loss of rank 0 (same problem for each V; differs only by the weight draw "
                  "per rank):", {f"{k[0]}/{k[1]}/{k[2]}": round(v, 4) for k, v in losses.items()})

    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(6, 4))
        for ranks_count in args.ranks:
            points = [(job["classes"], max(r["peak_mib"] for r in ranks))
                      for job, ranks in results
                      if job["method"] == "sharded" and job["ranks"] == ranks_count]
            axes.plot(*zip(*points, strict=True), marker="o",
                      label=f"sharded, {ranks_count} rank(s)")
        for method in anchors:
            points = [(job["classes"], ranks[0]["peak_mib"]) for job, ranks in results
                      if job["method"] == method]
            if points:
                axes.plot(*zip(*points, strict=True), marker="s", linestyle="--",
                          label=f"unsharded {method}")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("catalogue size V")
        axes.set_ylabel("peak MiB per rank above baseline")
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.plot, dpi=120)
        console.print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
