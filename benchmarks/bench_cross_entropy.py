"""Fused softmax cross-entropy (numba) vs torch eager: forward + backward, time and memory.

    .venv/bin/python benchmarks/bench_cross_entropy.py            # N=4096, C=32768, float32
    .venv/bin/python benchmarks/bench_cross_entropy.py --quick    # N=1024, C=8192

Median of ``--reps`` runs after a warm-up; the extra peak memory of each contender is measured
in its own subprocess over a warm-up and three more steps, by two witnesses (peak RSS, and the
peak bytes held by tensors from ``torch.profiler``; see ``crossent.benchmarking``), each shown
against the logits' size. The header names the CPU, its SIMD flags and the kernels torch and
numba picked: ``ATEN_CPU_CAPABILITY=avx2 NUMBA_CPU_NAME=haswell`` approximates an AVX2-only
machine on one with AVX-512.
Targets (issue 14): with validation on (the default) and not in place, >= 3x faster than torch
eager with <= 1.1x the logits' size in extra memory; in place >= 6x. The same with
``validate=False``, and the cost of validation in percent.
"""

from __future__ import annotations

import argparse

from crossent import benchmarking as _benchmarks
from crossent._bench_support import machine_header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=32768)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="N=1024, C=8192, 3 reps")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    args = parser.parse_args()
    rows, classes, reps = args.rows, args.classes, args.reps
    if args.quick:
        rows, classes, reps = 1024, 8192, 3
    sizes = {"rows": rows, "classes": classes}
    logits_bytes = rows * classes * 4
    print(machine_header())
    print(f"cross-entropy forward + backward, N={rows}, C={classes}, float32 "
          f"(logits {logits_bytes / 2**20:,.0f} MiB); {_benchmarks.machine_load()}")
    results = _benchmarks.run_suite(
        "cross_entropy", sizes, reps=reps, memory=not args.no_memory,
        progress=lambda message: print(f"  {message}", flush=True),
    )
    rows_out = _benchmarks.table_rows(results, "torch eager")
    header = [*_benchmarks.TABLE_HEADER, "RSS / logits", "tensors / logits"]
    for row, result in zip(rows_out, results, strict=True):
        for extra in (result.peak_bytes, result.tensor_bytes):
            row.append("-" if extra is None else f"{extra / logits_bytes:.2f}x")
    print(_benchmarks.format_table(header, rows_out))
    by_name = {result.name: result for result in results}
    for on, off in (("crossent fused", "crossent fused, validate=False"),
                    ("crossent fused inplace", "crossent fused inplace, validate=False")):
        cost = by_name[on].seconds / by_name[off].seconds - 1.0
        print(f"cost of validation, {on}: {100 * cost:+.1f}% of the time without it")
    print(f"after: {_benchmarks.machine_load()}")


if __name__ == "__main__":
    main()
