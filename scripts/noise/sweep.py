"""Measure each statistical test's asserted quantities over many seeds (docs/TESTING.md).

Each case runs the test's own ``measure`` function, the one its assertions read, with the seed
changed everywhere the test fixes one (the simulated world, the training, the sampling), and
appends one JSON line per seed to ``scripts/noise/results/<case>.jsonl``. The summary prints,
per asserted quantity, the mean, sample std, min and max over the recorded seeds, the test's
bound, and how many standard deviations the mean sits inside it.

Margin rule (docs/TESTING.md): a bound holds the mean at least 4 standard deviations inside it,
and every recorded seed inside it.

    nice -n 10 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \\
        .venv/bin/python scripts/noise/sweep.py ranking-losses --seeds 0-19
    .venv/bin/python scripts/noise/sweep.py ranking-losses --summary
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"


def _load(path: str) -> ModuleType:
    """A test module, imported by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


Bounds = dict[str, tuple[str, float]]


def _ranking_losses(seed: int) -> dict[str, float]:
    module = _load("tests/recsys/test_recsys_ranking_losses.py")
    result, log = module.retrieval_stage(seed)
    return {**module.measure_watch_time(result, log), **module.measure_focal(result, log)}


def _module_measure(path: str, name: str, *args: Any) -> Callable[[int], dict[str, float]]:
    """``measure(seed)`` calling the test module's own function ``name(*args, seed)``."""
    return lambda seed: getattr(_load(path), name)(*args, seed)


def _small_world(seed: int) -> dict[str, float]:
    module = _load("tests/recsys/training/test_training_loop.py")
    result, _ = module.train_small_world(seed)
    return module.measure_training(result)


def _bayes_monte_carlo(seed: int) -> dict[str, float]:
    module = _load("tests/lab/test_lab_data.py")
    values = {}
    for priors, noise in (((0.5, 0.5), 0.05), ((0.8, 0.2), 0.1)):
        for name, value in module.measure_bayes_monte_carlo(priors, noise, seed).items():
            values[f"{name}, priors {priors}, noise {noise}"] = value
    return values


def _movielens(seed: int) -> dict[str, float]:
    data = _load("tests/recsys/conftest.py").MOVIELENS_SMALL
    return _load("tests/recsys/test_recsys_movielens.py").measure_movielens_sequence(data, seed)


SIMULATE = "tests/recsys/data/test_data_simulate.py"
DEMO = "tests/recsys/test_recsys_demo_world.py"

#: case -> (measure(seed) -> quantities, the test(s) it stands for, the bounds they assert)
CASES: dict[str, tuple[Callable[[int], dict[str, float]], str, Bounds]] = {
    "ranking-losses": (
        _ranking_losses,
        "tests/recsys/test_recsys_ranking_losses.py::test_watch_time_model_odds_estimate_"
        "expected_watch_time, ::test_focal_ranking_is_platt_scaled_to_near_the_truths_log_loss",
        {
            "total odds / exact": ("within", 0.3),
            "top / bottom decile exact": (">", 5.0),
            "corr(decile odds, exact)": (">", 0.95),
            "max |log(decile odds / exact)|": ("<", math.log(1.8)),
            "max |logged - exact| / se per decile": ("<", 5.0),
            "max |log(decile odds / logged)|": ("<", math.log(1.5)),  # the old question
            "|raw mean - watch rate|": (">", 0.1),
            "raw log loss / truth": (">", 1.15),
            "|calibrated mean - watch rate|": ("<", 0.02),  # the old question, for the record
            "|calibrated mean - watch rate| / se": ("<", 5.0),
            "calibrated log loss / truth": ("<", 1.06),
        },
    ),
    "sampled-watches": (
        _module_measure(SIMULATE, "measure_sampled_watches"),
        f"{SIMULATE}::test_sampled_watches_follow_the_true_distribution",
        {"chi-square p, position 0": (">", 1e-6), "chi-square p, position 4": (">", 1e-6)},
    ),
    "watch-count": (
        _module_measure(SIMULATE, "measure_watch_count"),
        f"{SIMULATE}::test_impression_probabilities_follow_the_documented_formula",
        {"watch count z": ("abs<", 5.0)},
    ),
    "negatives": (
        _module_measure("tests/recsys/models/test_models_logged_ranking.py", "measure_negatives"),
        "tests/recsys/models/test_models_logged_ranking.py::test_negatives_are_seeded_and_drawn_by_"
        "popularity_among_unwatched_videos",
        {"chi-square p": (">", 1e-6)},
    ),
    "platt": (
        _module_measure("tests/recsys/training/test_training_calibration.py",
            "measure_platt_recovery"),
        "tests/recsys/training/test_training_calibration.py::test_a_known_distortion_of_the_logit_is_"
        "recovered, ::test_calibrated_logits_of_a_calibrated_model_fit_the_identity",
        {
            "distorted: scale - 2": ("abs<", 0.05),
            "distorted: shift - 1": ("abs<", 0.05),
            "calibrated: scale - 1": ("abs<", 0.04),
            "calibrated: shift": ("abs<", 0.04),
        },
    ),
    "quantile-ece": (
        _module_measure("tests/metrics/test_metrics_streaming.py", "measure_quantile_calibration"),
        "tests/metrics/test_metrics_streaming.py::test_quantile_calibration_edges_cut_the_"
        "weight_within_one_fine_bin",
        {"|streaming - exact ECE|": ("<", 1e-3)},
    ),
    "bayes-monte-carlo": (
        _bayes_monte_carlo,
        "tests/lab/test_lab_data.py::test_bayes_error_and_cross_entropy_match_monte_carlo",
        {
            f"{name}, priors {priors}, noise {noise}": ("abs<", 5.0)
            for priors, noise in (((0.5, 0.5), 0.05), ((0.8, 0.2), 0.1))
            for name in ("error z", "bits z")
        },
    ),
    "bucketing": (
        _module_measure("tests/recsys/training/test_training_loop.py", "measure_bucketing"),
        "tests/recsys/training/test_training_loop.py::test_bucketed_batches_hold_every_example_once_"
        "among_alike_lengths",
        {"bucketed / random spread": ("<", 0.03)},
    ),
    "small-world": (
        _small_world,
        "tests/recsys/training/test_training_loop.py::test_training_lowers_the_loss_and_approaches_the_"
        "bayes_limit",
        {
            "best / first valid bits": ("<", 1.0),
            "nats / log(40)": ("<", 1.0),
            "expected nats - Bayes": (">", -1e-9),
            "nats / Bayes": ("<", 1.55),
            "HR@10 model - most popular": (">", 0.0),
            "expected nats bag / model": (">", 1.0),
            "ranking log loss model / constant": ("<", 1.0),  # no longer asserted
        },
    ),
    "lab-synthetic": (
        _module_measure("tests/lab/test_lab.py", "measure_synthetic_lab"),
        "tests/lab/test_lab.py::test_cross_entropy_beats_mse_on_log_loss_on_the_synthetic_set",
        {"mse - ce log loss (bits)": (">", 0.0), "|ce - Bayes| (bits)": ("<", 0.1)},
    ),
    "demo-world": (
        _module_measure(DEMO, "measure_demo_world"),
        f"{DEMO}::test_the_sequence_model_is_near_the_bayes_limit_and_above_ease",
        {
            "expected nats / Bayes": ("<", 1.03),
            "test nats / Bayes": ("<", 1.04),
            "bag expected nats / Bayes": (">", 1.1),
            "HR@10 model - EASE": (">", 0.0),
            "NDCG@10 model - EASE": (">", 0.0),
            "HR@10 model - oracle": ("<", 0.02),
            "NDCG@10 model - oracle": ("<", 0.02),
        },
    ),
    "movielens": (
        _movielens,
        "tests/recsys/test_recsys_movielens.py::test_the_sequence_model_ranks_with_most_popular",
        {"HR@10 model / most popular": (">", 0.8), "NDCG@10 model / most popular": (">", 0.65)},
    ),
}


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def _numerics() -> str:
    keys = ("ATEN_CPU_CAPABILITY", "NUMBA_CPU_NAME")
    return ",".join(f"{key}={os.environ[key]}" for key in keys if key in os.environ) or "native"


def _results_file(case: str, numerics: str) -> Path:
    suffix = "" if numerics == "native" else "." + numerics.replace("=", "-").replace(",", ".")
    return RESULTS / f"{case}{suffix}.jsonl"


def _records(case: str, numerics: str) -> dict[int, dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for line in _results_file(case, numerics).read_text().splitlines():
        record = json.loads(line)
        rows[record["seed"]] = record  # a rerun seed keeps its latest line
    return rows


def _shown(op: str, bound: float) -> str:
    return {"within": f"|x - 1| < {bound:.3g}", "abs<": f"|x| < {bound:.3g}",
            "<": f"< {bound:.4g}", ">": f"> {bound:.4g}"}[op]


def _rule(name: str) -> str:
    """The margin rule of a quantity (docs/TESTING.md): a p-value or z-score has a known law."""
    known = name.startswith("chi-square p") or " z" in name or "/ se" in name
    return "α" if known else "4 sd"


def markdown(case: str, numerics: str) -> None:
    """One docs/TESTING.md table row per asserted quantity (the test named on the first)."""
    _, test, bounds = CASES[case]
    rows = _records(case, numerics)
    first = True
    for name, (op, bound) in bounds.items():
        values = [float(row["values"][name]) for row in rows.values() if name in row["values"]]
        if not values:
            continue
        n, mean = len(values), sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        shown = f"`{test}`" if first else ""
        first = False
        escaped, bound_text = (text.replace("|", "\\|") for text in (name, _shown(op, bound)))
        print(f"| {shown} | {escaped} | {n} | {mean:.4g} ± {std:.2g} "
              f"({min(values):.4g} – {max(values):.4g}) | {bound_text} | {_rule(name)} "
              f"| `{case}` |")


def summarise(case: str, numerics: str) -> None:
    _, test, bounds = CASES[case]
    rows = _records(case, numerics)
    print(f"{case} ({numerics}): {len(rows)} seeds {sorted(rows)}\n  {test}")
    print(f"  {'quantity':40s} {'n':>3s} {'mean':>9s} {'std':>8s} {'min':>9s} {'max':>9s}  "
          f"{'bound':>14s} {'sds inside':>10s} {'all in':>6s}")
    for name, (op, bound) in bounds.items():
        values = [float(row["values"][name]) for row in rows.values() if name in row["values"]]
        n = len(values)
        if n == 0:
            continue
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        if op == "within":  # |value - 1| < bound
            room = bound - abs(mean - 1.0)
            inside = all(abs(v - 1.0) < bound for v in values)
            shown = f"1 +- {bound:.3g}"
        elif op == "abs<":  # |value| < bound
            room = bound - abs(mean)
            inside = all(abs(v) < bound for v in values)
            shown = f"|x| < {bound:.3g}"
        elif op == "<":
            room, inside, shown = bound - mean, all(v < bound for v in values), f"< {bound:.4g}"
        else:
            room, inside, shown = mean - bound, all(v > bound for v in values), f"> {bound:.4g}"
        sds = room / std if std > 0 else math.inf
        print(f"  {name:40s} {n:3d} {mean:9.4f} {std:8.4f} {min(values):9.4f} {max(values):9.4f}  "
              f"{shown:>14s} {sds:10.1f} {'yes' if inside else 'NO':>6s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--seeds", default="0-19", help="e.g. 0-19 or 0,3,5-9")
    parser.add_argument("--summary", action="store_true", help="only summarise recorded seeds")
    parser.add_argument("--markdown", action="store_true", help="docs/TESTING.md table rows")
    args = parser.parse_args()
    numerics = _numerics()
    if args.markdown:
        markdown(args.case, numerics)
        return
    if not args.summary:
        measure = CASES[args.case][0]
        RESULTS.mkdir(exist_ok=True)
        for seed in _parse_seeds(args.seeds):
            start = time.perf_counter()
            values = measure(seed)
            record = {"seed": seed, "numerics": numerics, "values": values,
                      "seconds": round(time.perf_counter() - start, 1)}
            with _results_file(args.case, numerics).open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
    summarise(args.case, numerics)


if __name__ == "__main__":
    main()
