"""Which thread pool spins? CPU time burnt by idle workers of torch's and numba's pools.

    .venv/bin/python benchmarks/probe_spin.py               # crossent's default (a short spin)
    GOMP_SPINCOUNT=300000 .venv/bin/python benchmarks/probe_spin.py   # libgomp's own default

For each pool, calls one small parallel operation 200 times with 2 ms of sleep in between (as
a training loop does between its operations) and reports the CPU time the whole process used
beside that of the calling thread: the difference is what the pool's worker threads burnt,
including any spinning while the caller slept. A pool that spins shows close to one core per
worker during the sleeps; a passive one shows only the work itself. CPU time, unlike wall
time, hardly depends on what else the machine runs, so this probe can run on a busy machine.
"""

from __future__ import annotations

import os
import time

import numpy as np

import crossent  # sets the wait policy before torch and numba load
from crossent._bench_support import machine_header


def _burnt(call: object, repeats: int = 200, pause: float = 0.002) -> tuple[float, float, float]:
    """(wall s, process CPU s, calling thread's CPU s) of ``repeats`` calls with pauses."""
    call()  # type: ignore[operator]
    wall, process, thread = time.perf_counter(), time.process_time(), time.thread_time()
    for _ in range(repeats):
        call()  # type: ignore[operator]
        time.sleep(pause)
    return (time.perf_counter() - wall, time.process_time() - process,
            time.thread_time() - thread)


def main() -> None:
    import torch

    print(machine_header())
    print(f"# GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')}")
    logits = torch.randn(256, 4096)
    target = torch.randint(0, 4096, (256,))
    matrix = torch.randn(256, 256)
    calls = {
        "torch (OpenMP, torch's libgomp)": lambda: torch.mm(matrix, matrix).exp_(),
        "numba (omp layer, system libgomp)": lambda: crossent.cross_entropy(
            logits, target, implementation="fused"),
        "numpy (no pool)": lambda: np.exp(np.ones(65536)),
    }
    for name, call in calls.items():
        wall, process, thread = _burnt(call)
        print(f"{name:36s} wall {wall:5.2f} s, process CPU {process:5.2f} s, calling thread "
              f"{thread:5.2f} s: workers burnt {process - thread:5.2f} s "
              f"({(process - thread) / wall:4.2f} cores)")


if __name__ == "__main__":
    main()
