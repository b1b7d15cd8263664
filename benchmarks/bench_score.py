"""`crossent score` on a big generated CSV: plain, gzip-compressed, and with 100 segments.

Generates a binary prediction file (``label,prob,segment``; 50 million rows by default, 100
segments ``s00`` .. ``s99``) in a temporary folder, streaming, and its gzip copy, then runs,
each in its own subprocess so that peak RSS is its own:

1. ``crossent score FILE --json`` (blocks of the file, fixed memory): the plain-CSV rate;
2. ``crossent score FILE.gz --json``: decompressed as a stream;
3. ``crossent score FILE --by segment --json``: 100 segments;
4. ``pandas.read_csv`` + ``sklearn.metrics.log_loss`` (needs the whole file in memory). When
   that would not fit in half the available memory, it runs on the longest prefix that does
   and says so.

Prints peak RSS and rows/s of each, the ratios to plain CSV, and checks that the log losses
agree. Targets: plain >= 4M rows/s; .gz >= 70% of plain; --by (100 segments) >= 60% of plain;
peak RSS < 300 MiB in each case.

    python benchmarks/bench_score.py            # 50M rows (a few minutes)
    python benchmarks/bench_score.py --rows 2e6 # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RSS_TARGET_MIB = 300
RATE_TARGET = 4e6
GZ_TARGET = 0.7
BY_TARGET = 0.6
SEGMENTS = 100
PANDAS_BYTES_PER_ROW = 140  # measured peak of read_csv + log_loss on this file, with margin


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 2_000_000) -> None:
    """Write ``rows`` of ``label,prob,segment`` (prob with 6 decimals), chunk by chunk.

    Each row is exactly ``"y,d.dddddd,sNN\n"``, so a chunk is built as an (n, 15) byte
    matrix: seconds for 50M rows instead of minutes of string formatting.
    """
    rng = np.random.default_rng(seed)
    with path.open("wb") as handle:
        handle.write(b"label,prob,segment\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            micro = np.round(rng.beta(1.0, 3.0, size=n) * 1e6).astype(np.int64)  # prob * 10^6
            label = rng.uniform(size=n) < micro / 1e6  # calibrated: P(y = 1) = prob
            segment = rng.integers(0, SEGMENTS, size=n)
            text = np.empty((n, 15), dtype=np.uint8)
            text[:, 0] = ord("0") + label
            text[:, 1] = ord(",")
            text[:, 2] = ord("0") + micro // 1_000_000
            text[:, 3] = ord(".")
            digits = micro % 1_000_000
            for position in range(9, 3, -1):
                text[:, position] = ord("0") + digits % 10
                digits //= 10
            text[:, 10] = ord(",")
            text[:, 11] = ord("s")
            text[:, 12] = ord("0") + segment // 10
            text[:, 13] = ord("0") + segment % 10
            text[:, 14] = ord("\n")
            handle.write(text.tobytes())


def compress(path: Path, target: Path) -> None:
    """gzip ``path`` to ``target`` (level 1: the fastest to write; reading costs the same)."""
    import gzip

    with path.open("rb") as source, gzip.open(target, "wb", compresslevel=1) as out:
        while block := source.read(1 << 24):
            out.write(block)


def run_measured(command: list[str]) -> tuple[float, float, str]:
    """Run ``command``; return (seconds, peak RSS in MiB of that process, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
    return seconds, usage.ru_maxrss / 1024, stdout  # ru_maxrss is KiB on Linux


_PANDAS_SCRIPT = """
import json, sys, time
import pandas as pd
from sklearn.metrics import log_loss
path, nrows = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
types = {"label": "int8", "prob": "float64"}
frame = pd.read_csv(
    path, nrows=nrows if nrows > 0 else None, dtype=types, usecols=["label", "prob"]
)
value = log_loss(frame["label"].to_numpy(), frame["prob"].to_numpy())
print(json.dumps({"rows": len(frame), "log_loss": value, "seconds": time.perf_counter() - start}))
"""

_CROSSENT_PREFIX_SCRIPT = """
import json, sys
from crossent.scoring.columns import Columns
from crossent.scoring.files import FileScorer
scorer = FileScorer(Columns("label", prob="prob"))
scorer.add_file(sys.argv[1])
print(json.dumps({"rows": scorer.rows, "log_loss": scorer.result().log_loss}))
"""


def available_mib() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=50e6, help="rows to generate (50e6)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary CSV")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--skip-pandas", action="store_true", help="only run crossent")
    args = parser.parse_args()
    rows = int(args.rows)
    folder = Path(tempfile.mkdtemp(prefix="bench_score_", dir=args.dir))
    path = folder / "predictions.csv"
    try:
        start = time.perf_counter()
        generate(path, rows)
        size_mib = path.stat().st_size / 2**20
        took = time.perf_counter() - start
        print(f"generated {rows:,} rows ({size_mib:,.0f} MiB) in {took:.1f} s")

        gz_path = folder / "predictions.csv.gz"
        start = time.perf_counter()
        compress(path, gz_path)
        took = time.perf_counter() - start
        print(f"gzip copy: {gz_path.stat().st_size / 2**20:,.0f} MiB in {took:.1f} s")
        crossent = [str(Path(sys.executable).with_name("crossent"))]
        if not Path(crossent[0]).exists():
            crossent = [sys.executable, "-m", "crossent"]
        startup, startup_rss, _ = run_measured([*crossent, "score", "--help"])
        print(f"crossent startup (imports, no scoring): {startup:.1f} s, {startup_rss:.0f} MiB RSS")
        runs = {
            "plain CSV": [str(path)],
            "CSV .gz": [str(gz_path)],
            f"--by ({SEGMENTS} segments)": [str(path), "--by", "segment"],
        }
        rates: dict[str, float] = {}
        peaks: dict[str, float] = {}
        ours: dict = {}
        for name, arguments in runs.items():
            seconds, rss, out = run_measured([*crossent, "score", *arguments, "--json"])
            result = json.loads(out)
            rates[name], peaks[name] = result["rows"] / seconds, rss
            ours = ours or result
            if abs(result["log_loss"] - ours["log_loss"]) > 1e-9 * max(1.0, ours["log_loss"]):
                raise SystemExit(f"{name}: log loss {result['log_loss']} != {ours['log_loss']}")
            ratio = rates[name] / rates["plain CSV"]
            target = {"plain CSV": None, "CSV .gz": GZ_TARGET}.get(name, BY_TARGET)
            verdict = (
                f"target >= {RATE_TARGET / 1e6:.0f}M rows/s: "
                f"{'OK' if rates[name] >= RATE_TARGET else 'BELOW'}"
                if target is None
                else f"{ratio:.0%} of plain (target >= {target:.0%}: "
                f"{'OK' if ratio >= target else 'BELOW'})"
            )
            print(
                f"crossent score {name:<18}: {result['rows']:>12,} rows  {seconds:7.1f} s  "
                f"{rates[name]:12,.0f} rows/s  peak RSS {rss:6.1f} MiB "
                f"({'OK' if rss < RSS_TARGET_MIB else 'OVER'} < {RSS_TARGET_MIB})  {verdict}"
            )
        ours_rate, rss = rates["plain CSV"], peaks["plain CSV"]
        if args.skip_pandas:
            return
        budget = available_mib() / 2
        pandas_rows = rows
        if rows * PANDAS_BYTES_PER_ROW / 2**20 > budget:
            pandas_rows = int(budget * 2**20 / PANDAS_BYTES_PER_ROW)
            print(
                f"pandas needs about {rows * PANDAS_BYTES_PER_ROW / 2**30:.1f} GiB for all rows, "
                f"more than half the available memory; running it on the first "
                f"{pandas_rows:,} rows"
            )
        p_seconds, p_rss, p_out = run_measured(
            [sys.executable, "-c", _PANDAS_SCRIPT, str(path), str(pandas_rows)]
        )
        theirs = json.loads(p_out)
        their_rate = theirs["rows"] / p_seconds
        print(
            f"pandas+sklearn : {theirs['rows']:>12,} rows  {p_seconds:7.1f} s  "
            f"{their_rate:12,.0f} rows/s  peak RSS {p_rss:7.1f} MiB  "
            f"log loss {theirs['log_loss']:.12f}"
        )
        reference = ours
        if theirs["rows"] != ours["rows"]:
            prefix = folder / "prefix.csv"
            with path.open("rb") as source, prefix.open("wb") as target:
                for _ in range(theirs["rows"] + 1):
                    target.write(source.readline())
            reference = json.loads(
                run_measured([sys.executable, "-c", _CROSSENT_PREFIX_SCRIPT, str(prefix)])[2]
            )
        difference = abs(reference["log_loss"] - theirs["log_loss"])
        print(
            f"ratio          : crossent {ours_rate / their_rate:.2f}x the rows/s of pandas+sklearn,"
            " "
            f"{p_rss / rss:.1f}x less peak memory; |log loss difference| = {difference:.1e} "
            f"on the same {theirs['rows']:,} rows"
        )
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
