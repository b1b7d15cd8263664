"""Where `crossent demo` spends its time: a profile by phase, in CPU seconds and wall seconds.

    .venv/bin/python benchmarks/profile_demo.py                      # the demo as it runs
    .venv/bin/python benchmarks/profile_demo.py --out /tmp/demo.prof # keep the cProfile data

Runs ``crossent demo`` in this process under cProfile with the *process CPU time* as its
clock (all threads), so the proportions hold on a machine that other jobs share, and prints
the phases (start-up, simulation, the sequence model's epochs and its validation, EASE's
grid, the bag baseline, the oracle, the ranking stage, the report and checkpoint) with their
share. The wall time of the whole run is printed beside it; on an idle machine it is the
figure to compare with the one-minute target.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time

#: phase -> the function whose cumulative time it is (file suffix, function name)
PHASES = {
    "sequence model: training epochs": ("recsys/training/loop.py", "fit_candidate"),
    "  of which validation (bits + NDCG@10)": ("recsys/training/loop.py", "candidate_validation"),
    "EASE: λ grid + test": ("recsys/retrieval.py", "add_fitted_baselines"),
    "bag baseline (training + test)": ("recsys/retrieval.py", "add_bag_baseline"),
    "every retrieval evaluation (all of the above)": ("recsys/evaluation/protocol.py",
        "evaluate_retrieval"),
    "ranking stage": ("recsys/ranking_stage.py", "train_simulated_ranking"),
    "simulation": ("recsys/data/simulate.py", "simulate"),
    "report figures": ("recsys/report.py", "write_report"),
    "checkpoint": ("recsys/serving/checkpoint.py", "save_checkpoint"),
    "whole demo command": ("cli/demo.py", "demo"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="save the cProfile data here (pstats format)")
    parser.add_argument("demo_args", nargs="*", help="extra options for crossent demo")
    args = parser.parse_args()
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    from crossent._bench_support import machine_header  # imports torch: part of start-up
    from crossent.cli import app

    with tempfile.TemporaryDirectory() as folder:
        try:
            app(["demo", "--out", folder, *args.demo_args], standalone_mode=False)
        finally:
            profiler.disable()
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    stats = pstats.Stats(profiler, stream=sys.stdout)
    if args.out:
        stats.dump_stats(args.out)
    cumulative = {}
    for (path, _, name), (_, _, _, total, _) in stats.stats.items():  # type: ignore[attr-defined]
        for phase, (suffix, function) in PHASES.items():
            if name == function and path.endswith(suffix):
                cumulative[phase] = max(cumulative.get(phase, 0.0), total)
    print(machine_header())
    print(f"# crossent demo {' '.join(args.demo_args)}: wall {wall:.1f} s, process CPU "
          f"{cpu:.1f} s; load average {os.getloadavg()[0]:.2f} at the end")
    command = cumulative.get("whole demo command", cpu)
    print(f"{'phase':42s} {'CPU s':>8s} {'share':>7s}")
    print(f"{'start-up (imports before the command)':42s} {cpu - command:8.1f} "
          f"{100 * (cpu - command) / cpu:6.1f}%")
    for phase in PHASES:
        seconds = cumulative.get(phase, 0.0)
        print(f"{phase:42s} {seconds:8.1f} {100 * seconds / cpu:6.1f}%")


if __name__ == "__main__":
    main()
