"""What every benchmark prints and measures beside its timings: the machine, and a memory witness
that does not depend on the allocator.

* :func:`machine_header`: the CPU model, the SIMD flags that decide which kernels run (AVX2,
  AVX-512, FMA), the kernels torch picked (``ATEN_CPU_CAPABILITY`` can lower them) and the
  CPU numba compiles for (``NUMBA_CPU_NAME``), the thread counts and the load average. A
  figure without these cannot be compared with one from another machine.
* :func:`peak_tensor_bytes`: the peak of the bytes held by tensors while a step runs, from
  ``torch.profiler`` with ``profile_memory=True`` (every tensor allocation and free, in
  order, as the profiler records them). Unlike the peak RSS it does not count memory the heap
  keeps after a free (glibc keeps freed blocks below its mmap threshold, and raises that
  threshold after each large free), nor pages of a buffer never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable

_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of the SIMD flags that matter here it has (Linux)."""
    model, flags = "unknown CPU", set[str]()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        import platform

        model = platform.processor() or model
    return model, [flag for flag in _FLAGS if flag in flags]


def machine_header() -> str:
    """Lines naming the machine a benchmark ran on, for the top of its report."""
    import torch

    model, flags = cpu_model_and_flags()
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        import numba

        target = numba.config.CPU_NAME or "host"  # type: ignore[attr-defined]
        numba_cpu = f"numba {numba.__version__} compiles for {target}"
        numba_threads = numba.get_num_threads()
    except ImportError:  # pragma: no cover - numba is a dependency
        numba_cpu, numba_threads = "numba missing", 0
    try:
        one, five, fifteen = os.getloadavg()
        load = f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        load = "load average unavailable"
    capability = torch.backends.cpu.get_cpu_capability()
    return "\n".join([
        f"# CPU: {model}; flags: {' '.join(flags) or 'none of ' + ' '.join(_FLAGS)}; "
        f"{cores} cores usable",
        f"# torch {torch.__version__} kernels: {capability}"
        f" (ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', 'unset')}); "
        f"{numba_cpu} (NUMBA_CPU_NAME={os.environ.get('NUMBA_CPU_NAME', 'unset')})",
        f"# threads: torch {torch.get_num_threads()}, numba {numba_threads}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; {load}",
    ])


def peak_tensor_bytes(step: Callable[[], None]) -> int:
    """Peak bytes held by CPU tensors allocated during ``step``, above those held before it.

    Replays the profiler's memory events (``[memory]``: one per allocation, positive bytes,
    and per free, negative) in time order and keeps the running sum's maximum. Tensors that
    existed before the step (the inputs) are not counted; tensors the step leaves behind
    (gradients) are, since they are part of what the step costs.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as trace:
            events = json.load(trace)["traceEvents"]
    memory = sorted(
        (event["ts"], int(event["args"]["Bytes"]))
        for event in events
        if event.get("name") == "[memory]"
        and str(event.get("args", {}).get("Device Type", 0)) in ("0", "cpu")
    )
    held = peak = 0
    for _, delta in memory:
        held += delta
        peak = max(peak, held)
    return peak
