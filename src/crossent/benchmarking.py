"""Fused kernels vs PyTorch: the measurements behind ``benchmarks/`` and ``crossent bench``.

Two suites, each a list of contenders doing one forward + backward on the same inputs:

* ``cross_entropy``: (N, C) logits. torch eager ``F.cross_entropy``; crossent's fused numba
  kernel through the public API (``implementation="fused"``), with and without ``inplace``,
  with validation on (the default: the kernel checks the logits during its sweep) and off.
* ``linear_cross_entropy``: hidden (N, D), weight (V, D). torch eager (materialised logits);
  torch's chunked ``F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())``;
  ``crossent.linear_cross_entropy`` (also with ``z_loss`` and ``softcap``); and the floor: the
  same three matrix products per chunk alone (logits, dH, dW), without any softmax.

Time: one warm-up, then ``reps`` repetitions; the median is reported. Inputs are rebuilt
before each repetition (outside the timed region), since ``inplace=True`` consumes them.

Memory: each contender runs in its own subprocess, with two witnesses, each the memory a step
adds on top of its inputs (its gradients included, as a training step keeps them):

* **peak RSS** over a warm-up step and :data:`MEMORY_STEPS` more, each on fresh inputs made
  before the first (so making them is not counted) and each step's gradients dropped before
  the next, as ``zero_grad(set_to_none=True)`` does. The peak-RSS counter is reset after
  the inputs exist (Linux ``/proc/self/clear_refs``, then ``VmHWM``); the figure is that peak
  minus the RSS at the reset. Where the counter cannot be reset, ``ru_maxrss`` is used. RSS
  depends on the allocator: glibc keeps freed blocks below its (adaptive) mmap threshold, so
  a step that frees and allocates many mid-sized buffers shows more than it holds;
* **peak tensor bytes** of one more step, from ``torch.profiler`` (every tensor allocation
  and free, :func:`crossent._bench_support.peak_tensor_bytes`): what the tensors held at
  most, whatever the allocator keeps. It does not see memory outside torch tensors (NumPy
  scratch arrays, a JIT's code), which the RSS does.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from crossent._memory import reset_peak_rss, status_bytes

Step = Callable[[], None]


@dataclass(frozen=True)
class Result:
    """One contender's median time (s) and extra peak memory (bytes, or None if not measured):
    ``peak_bytes`` by RSS, ``tensor_bytes`` by the tensors' own allocations (profiler)."""

    name: str
    seconds: float
    peak_bytes: int | None
    tensor_bytes: int | None = None


#: Steps measured for memory after the warm-up step.
MEMORY_STEPS = 3


# ---------------------------------------------------------------------------------------------
# contenders: each takes the sizes and returns a closure doing forward + backward once


def _ce_inputs(rows: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, classes, generator=generator)
    target = torch.randint(0, classes, (rows,), generator=generator)
    return logits, target


def _ce_contender(name: str, rows: int, classes: int) -> Callable[[], Step]:
    """A factory: each call builds fresh inputs and returns the step to time."""
    import torch.nn.functional as F

    import crossent

    def factory() -> Step:
        logits, target = _ce_inputs(rows, classes)
        logits.requires_grad_()

        def torch_eager() -> None:
            F.cross_entropy(logits, target).backward()

        def fused(inplace: bool, validate: bool = True) -> Step:
            def step() -> None:
                loss = crossent.cross_entropy(
                    logits, target, implementation="fused", inplace=inplace, validate=validate
                )
                loss.backward()

            return step

        steps = {"torch eager": torch_eager, "crossent fused": fused(False),
                 "crossent fused inplace": fused(True),
                 "crossent fused, validate=False": fused(False, validate=False),
                 "crossent fused inplace, validate=False": fused(True, validate=False)}
        return steps[name]

    return factory


CE_CONTENDERS = ("torch eager", "crossent fused", "crossent fused inplace",
                 "crossent fused, validate=False", "crossent fused inplace, validate=False")
LINEAR_CONTENDERS = ("torch eager", "torch chunked", "crossent", "crossent (z_loss, softcap)",
                     "floor: 3 matmuls")


def _linear_inputs(
    rows: int, dim: int, classes: int, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(rows, dim, generator=generator, dtype=dtype)
    # drawn in the final dtype and scaled in place: no second weight-sized copy
    weight = torch.randn(classes, dim, generator=generator, dtype=dtype).div_(dim**0.5)
    target = torch.randint(0, classes, (rows,), generator=generator)
    return hidden.requires_grad_(), weight.requires_grad_(), target


def _linear_contender(name: str, rows: int, dim: int, classes: int) -> Callable[[], Step]:
    import torch.nn.functional as F

    import crossent
    from crossent.kernels.linear_sweep import default_chunk_rows

    def factory() -> Step:
        if name == "crossent (bfloat16)":
            # bfloat16 hidden and weight: the class-blocked route, weight never upcast whole
            hidden16, weight16, target16 = _linear_inputs(rows, dim, classes, torch.bfloat16)
            return lambda: crossent.linear_cross_entropy(hidden16, weight16, target16).backward()
        hidden, weight, target = _linear_inputs(rows, dim, classes)

        def torch_eager() -> None:
            F.cross_entropy(hidden @ weight.T, target).backward()

        def torch_chunked() -> None:
            options = torch.nn.LinearCrossEntropyOptions()
            F.linear_cross_entropy(hidden, weight, target, options=options).backward()

        def ours() -> None:
            crossent.linear_cross_entropy(hidden, weight, target).backward()

        def ours_with_options() -> None:
            crossent.linear_cross_entropy(hidden, weight, target, z_loss=1e-4,
                                          softcap=30.0).backward()

        def ours_hidden_only() -> None:
            frozen = weight.detach()  # e.g. a frozen catalogue of item embeddings
            crossent.linear_cross_entropy(hidden, frozen, target).backward()

        def floor() -> None:
            # the products crossent does, chunk for chunk, with nothing in between
            chunk = default_chunk_rows(rows, classes, 4, dim=dim)
            with torch.no_grad():
                buffer = torch.empty(min(chunk, rows), classes)
                grad_hidden = torch.empty_like(hidden)
                grad_weight = torch.zeros_like(weight)
                for start in range(0, rows, chunk):
                    stop = min(rows, start + chunk)
                    logits = buffer[: stop - start]
                    torch.mm(hidden[start:stop], weight.t(), out=logits)
                    torch.mm(logits, weight, out=grad_hidden[start:stop])
                    grad_weight.addmm_(logits.t(), hidden[start:stop])

        steps = {"torch eager": torch_eager, "torch chunked": torch_chunked, "crossent": ours,
                 "crossent (z_loss, softcap)": ours_with_options,
                 "crossent (weight frozen)": ours_hidden_only, "floor: 3 matmuls": floor}
        return steps[name]

    return factory


def _factory(suite: str, name: str, sizes: dict[str, int]) -> Callable[[], Step]:
    if suite == "cross_entropy":
        return _ce_contender(name, sizes["rows"], sizes["classes"])
    return _linear_contender(name, sizes["rows"], sizes["dim"], sizes["classes"])


def median_seconds(factory: Callable[[], Step], reps: int, warmup: int = 1) -> float:
    """Median wall time of ``reps`` runs after ``warmup`` runs; fresh inputs for each run."""
    times = []
    for index in range(warmup + reps):
        step = factory()
        start = time.perf_counter()
        step()
        elapsed = time.perf_counter() - start
        del step
        if index >= warmup:
            times.append(elapsed)
    return statistics.median(times)


def _warm_up(suite: str, name: str) -> None:
    """Compile or load the numba kernel (and import what the step imports) on a tiny problem."""
    if name.startswith("crossent"):
        tiny = {"rows": 2, "classes": 3} if suite == "cross_entropy" else {
            "rows": 2, "dim": 2, "classes": 3}
        _factory(suite, name, tiny)()()


def measure_peak_in_this_process(
    suite: str, name: str, sizes: dict[str, int], steps: int = MEMORY_STEPS
) -> tuple[int, int]:
    """Extra peak RSS over a warm-up and ``steps`` forward + backward passes, and the peak
    tensor bytes of one more (bytes, each on top of the inputs; see the module's docstring)."""
    from crossent._bench_support import peak_tensor_bytes

    factory = _factory(suite, name, sizes)
    pending = [factory() for _ in range(steps + 2)]  # every input exists before the reset
    _warm_up(suite, name)
    baseline = status_bytes("VmRSS")
    reset = reset_peak_rss() and baseline is not None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for _ in range(steps + 1):
        pending.pop(0)()  # the step, its inputs and its gradients are dropped after it
    if reset:
        rss = max(0, (status_bytes("VmHWM") or 0) - (baseline or 0))
    else:
        rss = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
    return rss, peak_tensor_bytes(pending.pop())


def _subprocess(suite: str, name: str, sizes: dict[str, int], mode: str, timeout: float) -> str:
    command = [
        sys.executable, "-m", "crossent.benchmarking", suite, name, json.dumps(sizes), mode
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"memory run of {name!r} failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def measure_peak(
    suite: str, name: str, sizes: dict[str, int], timeout: float = 900
) -> tuple[int, int]:
    """:func:`measure_peak_in_this_process` in a fresh subprocess (so nothing else counts):
    (extra peak RSS, extra peak tensor bytes)."""
    rss, tensors = _subprocess(suite, name, sizes, "extra", timeout).split()
    return int(rss), int(tensors)


def measure_peak_total(
    suite: str, name: str, sizes: dict[str, int], timeout: float = 1800
) -> tuple[int, int, float]:
    """Peak RSS of a whole fresh process (imports, inputs, one forward + backward), its RSS
    before the inputs were made (imports and the compiled kernel), and the seconds the step
    took."""
    peak, baseline, seconds = _subprocess(suite, name, sizes, "total", timeout).split()
    return int(peak), int(baseline), float(seconds)


def run_suite(
    suite: str,
    sizes: dict[str, int],
    *,
    reps: int,
    contenders: tuple[str, ...] | None = None,
    memory: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Time (median of ``reps``) and, if ``memory``, measure each contender of ``suite``."""
    names = contenders or (CE_CONTENDERS if suite == "cross_entropy" else LINEAR_CONTENDERS)
    results = []
    for name in names:
        if progress is not None:
            progress(f"{name}: timing")
        seconds = median_seconds(_factory(suite, name, sizes), reps)
        peak = tensors = None
        if memory and not name.startswith("floor"):
            if progress is not None:
                progress(f"{name}: peak memory")
            peak, tensors = measure_peak(suite, name, sizes)
        results.append(Result(name, seconds, peak, tensors))
    return results


def _memory_cells(value: int | None, anchor: int | None) -> list[str]:
    if value is None:
        return ["-", "-"]
    return [f"{value / 2**20:,.0f}", f"{value / anchor:.2f}x" if anchor else "-"]


def table_rows(results: list[Result], anchor: str) -> list[list[str]]:
    """Rows of name, median s, speed-up vs ``anchor``, then for each memory witness (RSS,
    tensors) the extra peak MiB and its ratio to ``anchor``'s."""
    by_name = {result.name: result for result in results}
    base = by_name[anchor]
    rows = []
    for result in results:
        speedup = base.seconds / result.seconds if result.seconds > 0 else float("inf")
        rows.append([result.name, f"{result.seconds:.3f}", f"{speedup:.2f}x",
                     *_memory_cells(result.peak_bytes, base.peak_bytes),
                     *_memory_cells(result.tensor_bytes, base.tensor_bytes)])
    return rows


TABLE_HEADER = ["contender", "median s", "speed-up", "extra peak RSS MiB", "RSS ratio",
                "extra tensor MiB", "tensor ratio"]


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain fixed-width table (the scripts' output; the CLI renders a rich one)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return "\n".join(lines)


def machine_load() -> str:
    """The 1/5/15-minute load averages and the core count, for the record."""
    try:
        import os

        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
    except OSError:
        return "load average unavailable"


def _main(argv: list[str]) -> None:
    suite, name, sizes, mode = argv[0], argv[1], json.loads(argv[2]), argv[3]
    if mode == "extra":
        print(*measure_peak_in_this_process(suite, name, sizes))
        return
    _warm_up(suite, name)
    baseline = status_bytes("VmRSS") or 0
    step = _factory(suite, name, sizes)()
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    # VmHWM belongs to this process's own address space; ru_maxrss is not reset by exec and
    # can report the parent's peak (a benchmark parent that just ran torch eager: ~10 GiB)
    peak = status_bytes("VmHWM")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(peak, baseline, seconds)


if __name__ == "__main__":
    _main(sys.argv[1:])


__all__: list[Any] = [
    "CE_CONTENDERS", "LINEAR_CONTENDERS", "MEMORY_STEPS", "TABLE_HEADER", "Result", "format_table",
    "machine_load", "measure_peak", "measure_peak_total", "median_seconds", "run_suite",
    "table_rows",
]
