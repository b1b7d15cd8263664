"""Chunked linear + cross-entropy vs torch eager and torch's chunked linear_cross_entropy.

    .venv/bin/python benchmarks/bench_linear_cross_entropy.py             # N=8192 D=256 V=100k
    .venv/bin/python benchmarks/bench_linear_cross_entropy.py --quick     # N=2048 D=128 V=20k
    .venv/bin/python benchmarks/bench_linear_cross_entropy.py --no-million

Forward + backward (gradients for hidden and weight), float32. Median of ``--reps`` runs after
a warm-up; extra peak memory of each contender in its own subprocess. The floor is the same
three matrix products (logits, dH, dW) per chunk, alone. Targets (issue 3): >= 1.5x faster
than eager, >= 2x faster than torch chunked at no more memory, <= 1.3x the floor; with
V = 1,000,000 (unless ``--no-million`` or ``--quick``) completes, and the peak RSS of its whole
process is printed: float32 with the weight frozen and trained (weight + its gradient alone are
1.9 GiB in float32, so the trained float32 run cannot stay under 2 GiB), and bfloat16 with the
weight trained (the class-blocked route: the weight is never upcast whole and its gradient is
written in bfloat16, block by block).
"""

from __future__ import annotations

import argparse

from crossent import benchmarking as _benchmarks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="N=2048, D=128, V=20000")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--no-million", action="store_true",
                        help="skip the V=1,000,000 run of crossent (minutes on 2 cores)")
    args = parser.parse_args()
    sizes = {"rows": args.rows, "dim": args.dim, "classes": args.classes}
    reps = args.reps
    if args.quick:
        sizes, reps = {"rows": 2048, "dim": 128, "classes": 20_000}, 3
    print(f"linear + cross-entropy forward + backward, N={sizes['rows']}, D={sizes['dim']}, "
          f"V={sizes['classes']}, float32; {_benchmarks.machine_load()}")
    results = _benchmarks.run_suite(
        "linear_cross_entropy", sizes, reps=reps, memory=not args.no_memory,
        progress=lambda message: print(f"  {message}", flush=True),
    )
    print(_benchmarks.format_table(
        _benchmarks.TABLE_HEADER, _benchmarks.table_rows(results, "torch eager")
    ))
    by_name = {result.name: result for result in results}
    ours = by_name["crossent"]
    print(f"crossent vs torch chunked: {by_name['torch chunked'].seconds / ours.seconds:.2f}x "
          f"faster; vs floor: {ours.seconds / by_name['floor: 3 matmuls'].seconds:.2f}x its time")
    if not (args.no_million or args.quick):
        huge = {"rows": sizes["rows"], "dim": sizes["dim"], "classes": 1_000_000}
        weight_gib = huge["classes"] * huge["dim"] * 4 / 2**30
        print(f"V=1,000,000, N={huge['rows']}, D={huge['dim']}: crossent once per process "
              f"(float32 weight {weight_gib:.2f} GiB, its gradient as much)", flush=True)
        for name in ("crossent (weight frozen)", "crossent", "crossent (bfloat16)"):
            peak, seconds = _benchmarks.measure_peak_total("linear_cross_entropy", name, huge)
            print(f"  {name}: {seconds:.1f} s, peak RSS of the whole process "
                  f"{peak / 2**30:.2f} GiB", flush=True)
    print(f"after: {_benchmarks.machine_load()}")


if __name__ == "__main__":
    main()
