"""Two trainings on one machine: does each still get its share, or do thread pools collapse?

    .venv/bin/python benchmarks/bench_contention.py                 # crossent's defaults
    .venv/bin/python benchmarks/bench_contention.py --spin          # libgomp's spinning default
    .venv/bin/python benchmarks/bench_contention.py --spin 0        # threads sleep at once
    .venv/bin/python benchmarks/bench_contention.py --epochs 3 --users 2000   # a longer run

Runs ``crossent train --data simulated`` (wall time of the whole process, start-up included)
in three settings, one after another:

1. alone;
2. two started together (the time of the slower one);
3. one beside a busy loop (``python -c "while True: pass"``) on the same cores.

With fair sharing, two runs together or one beside a busy loop take about 2x the time of one
alone on a machine whose cores they fill (target: at most 2x). ``--spin N`` runs the trainings
with ``GOMP_SPINCOUNT=N`` (crossent leaves it alone when the user sets it); ``--spin`` alone
is ``300000``, libgomp's own default when no wait policy is set, the behaviour before crossent
chose a short spin, and ``--spin 0`` is a passive wait (threads sleep at once). Run it on an
otherwise idle machine; the header prints the load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from crossent._bench_support import machine_header


def _train_command(args: argparse.Namespace, out: str) -> list[str]:
    command = [sys.executable, "-m", "crossent", "train", "--data", "simulated",
               "--users", str(args.users), "--videos", str(args.videos),
               "--epochs", str(args.epochs), "--out", out]
    return command + (["--threads", str(args.threads)] if args.threads else [])


def _environment(spin: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    if spin is not None:
        env["GOMP_SPINCOUNT"] = str(spin)
    return env


def _run_together(commands: list[list[str]], env: dict[str, str]) -> list[float]:
    """Start every command at once; the wall time of each (s)."""
    start = time.perf_counter()
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for command in commands]
    times = [0.0] * len(processes)
    pending = dict(enumerate(processes))
    while pending:
        for index, process in list(pending.items()):
            if process.poll() is not None:
                times[index] = time.perf_counter() - start
                if process.returncode != 0:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"training failed:\n{error[-2000:]}")
                del pending[index]
        time.sleep(0.05)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="--threads of each run (0: default)")
    parser.add_argument("--spin", type=int, nargs="?", const=300000, default=None,
                        metavar="N", help="GOMP_SPINCOUNT=N for the trainings (without N: "
                        "300000, libgomp's own default)")
    args = parser.parse_args()
    env = _environment(args.spin)
    print(machine_header())
    print(f"# crossent train --data simulated --users {args.users} --videos {args.videos} "
          f"--epochs {args.epochs}; "
          + (f"GOMP_SPINCOUNT={args.spin}" if args.spin is not None else "crossent's defaults"),
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
        def out(name: str) -> str:
            return os.path.join(folder, name)

        (alone,) = _run_together([_train_command(args, out("alone"))], env)
        print(f"alone:                   {alone:6.1f} s", flush=True)
        pair = _run_together([_train_command(args, out("a")), _train_command(args, out("b"))],
                             env)
        print(f"two together:            {pair[0]:6.1f} s and {pair[1]:6.1f} s", flush=True)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            (beside,) = _run_together([_train_command(args, out("busy"))], env)
        finally:
            busy.kill()
            busy.wait()
        print(f"beside a busy loop:      {beside:6.1f} s", flush=True)
    print(f"ratios to alone: two together {max(pair) / alone:.2f}x (target <= 2x), "
          f"beside a busy loop {beside / alone:.2f}x")
    print(f"# after: {os.getloadavg()[0]:.2f} load average (1 min)")


if __name__ == "__main__":
    main()
