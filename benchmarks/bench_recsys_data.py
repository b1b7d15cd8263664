"""Loader speed at MovieLens-25M scale, and the baseline numbers on ml-latest-small.

Part 1 writes a synthetic ``ratings.csv`` in the MovieLens format (``--rows``, default
25,000,095 rows like ML-25M: 162,541 users, 59,047 movies) and times
``crossent.recsys.load_movielens`` against ``pandas.read_csv`` + ``pandas.factorize`` (the
usual anchor) in the same process; the ratio is printed.

Part 2 (when ``../shared/data/ml-latest-small`` exists) is the project's MovieLens protocol:
ratings >= 4 are watches, leave-last-out, full-catalogue ranking with watched movies excluded.
It prints MostPopular and EASE HR@10 / NDCG@10 on validation and test for a grid of EASE
lambdas, so a model can be compared against the best baseline.

    .venv/bin/python benchmarks/bench_recsys_data.py                  # both parts
    .venv/bin/python benchmarks/bench_recsys_data.py --rows 5000000 --skip-baselines
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from rich.console import Console
from rich.table import Table

from crossent.recsys import (
    EASE,
    MostPopular,
    evaluate_retrieval,
    implicit,
    leave_last_out,
    load_movielens,
)

MOVIELENS_SMALL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ml-latest-small"


def _write_ratings(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "userId": rng.integers(1, 162_542, rows),
            "movieId": rng.zipf(1.3, rows) % 209_171 + 1,
            "rating": rng.integers(1, 11, rows) / 2.0,
            "timestamp": rng.integers(789_652_009, 1_574_327_703, rows),
        }
    )
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))


def bench_loader(console: Console, rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.csv"
        console.print(f"writing {rows:,} synthetic ratings to {path} ...")
        _write_ratings(path, rows)
        size = path.stat().st_size / 2**20
        start = time.perf_counter()
        inter = load_movielens(path)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        frame = pd.read_csv(path)
        pd.factorize(frame["userId"], sort=True)
        pd.factorize(frame["movieId"], sort=True)
        anchor = time.perf_counter() - start
    table = Table(title=f"load {rows:,} ratings ({size:.0f} MiB)")
    for column in ("loader", "seconds", "rows/s", "ratio to pandas"):
        table.add_column(column)
    table.add_row(
        "crossent load_movielens", f"{ours:.2f}", f"{rows / ours:,.0f}", f"{ours / anchor:.2f}"
    )
    table.add_row("pandas read_csv + factorize", f"{anchor:.2f}", f"{rows / anchor:,.0f}", "1.00")
    console.print(table)
    console.print(repr(inter))


def bench_baselines(console: Console, lambdas: list[float]) -> None:
    if not (MOVIELENS_SMALL / "ratings.csv").is_file():
        console.print(f"skipping baselines: {MOVIELENS_SMALL.resolve()} not found")
        return
    split = leave_last_out(implicit(load_movielens(MOVIELENS_SMALL), 4.0))
    console.print(f"{split.train!r} (train); {len(split.users('test'))} evaluated users")
    table = Table(title="ml-latest-small, ratings >= 4, leave-last-out, full ranking")
    for column in (
        "model",
        "valid HR@10",
        "valid NDCG@10",
        "test HR@10",
        "test NDCG@10",
        "fit s",
    ):
        table.add_column(column)
    models: list[tuple[str, object]] = [("MostPopular", MostPopular())]
    models += [(f"EASE lam={lam:g}", EASE(lam)) for lam in lambdas]
    for name, model in models:
        start = time.perf_counter()
        model.fit(split.train)  # type: ignore[attr-defined]
        fit = time.perf_counter() - start
        valid = evaluate_retrieval(model, split, "valid", ks=(10,))  # type: ignore[arg-type]
        test = evaluate_retrieval(model, split, "test", ks=(10,))  # type: ignore[arg-type]
        table.add_row(
            name,
            f"{valid['HR@10']:.4f}",
            f"{valid['NDCG@10']:.4f}",
            f"{test['HR@10']:.4f}",
            f"{test['NDCG@10']:.4f}",
            f"{fit:.1f}",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=25_000_095)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[50, 100, 200, 500, 1000])
    parser.add_argument("--skip-loader", action="store_true")
    parser.add_argument("--skip-baselines", action="store_true")
    arguments = parser.parse_args()
    console = Console()
    if not arguments.skip_loader:
        bench_loader(console, arguments.rows)
    if not arguments.skip_baselines:
        bench_baselines(console, arguments.lambdas)


if __name__ == "__main__":
    main()
