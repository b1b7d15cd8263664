"""`crossent evaluate`: metrics of a trained recommender, beside the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    model: Annotated[Path, typer.Option(help="Folder written by `crossent train`.")],
    data: Annotated[
        str | None,
        typer.Option(
            help='Evaluate on this file (or "simulated") instead of reporting the '
            "metrics measured after training. Same ids as the training data."
        ),
    ] = None,
    format: Annotated[str, typer.Option(help="auto, movielens, recbole, csv or parquet.")] = (
        "auto"
    ),
    min_rating: Annotated[
        float | None, typer.Option(help="Keep ratings >= this (default: as in training).")
    ] = None,
) -> None:
    """Hit@K, NDCG@K, MRR and test cross-entropy of a checkpoint, beside the baselines.

    A ranking model trained on a file is scored again on the same examples: log loss
    (nats, bits), normalized entropy, AUC and ECE, beside the base rate and popularity.
    """
    import numpy as np
    from rich.console import Console

    from crossent.cli._recsys_common import load_watches, print_result
    from crossent.errors import CrossentError
    from crossent.recsys.baselines import EASE, MostPopular
    from crossent.recsys.checkpoint import load_checkpoint
    from crossent.recsys.data import leave_last_out
    from crossent.recsys.evaluate import evaluate_retrieval
    from crossent.recsys.pipeline import RunResult, evaluate_logged_ranking
    from crossent.recsys.simulate import SimulationConfig, simulate
    from crossent.recsys.train import retrieval_cross_entropy

    console = Console()
    checkpoint = load_checkpoint(model)
    if data is None:
        for name, metrics in checkpoint.metrics.items():
            shown = ", ".join(f"{key} {value:.4g}" for key, value in metrics.items())
            console.print(f"[bold]{name}[/]: {shown}")
        return
    truth = None
    if data == "simulated":
        settings = checkpoint.extra.get("simulation")
        if settings is None:
            raise CrossentError(f"--model {model}: was not trained on simulated data")
        log = simulate(SimulationConfig(**settings))
        watches = log.interactions
        lengths = (log.watches >= 0).sum(1).numpy()

        def truth(users: np.ndarray):  # type: ignore[no-untyped-def]
            return log.next_watch_log_probs(users, lengths[users] - 1).double()
    else:
        rating = min_rating if min_rating is not None else checkpoint.extra.get("min_rating")
        watches = load_watches(data, format, rating)
    same = len(watches.item_ids) == len(checkpoint.item_ids) and np.array_equal(
        watches.item_ids.astype(str), checkpoint.item_ids.astype(str)
    )
    if not same:
        raise CrossentError(
            f"--data {data}: its {watches.n_items} items differ from the model's "
            f"{len(checkpoint.item_ids)}; evaluate on the data the model was trained on"
        )
    split = leave_last_out(watches)
    result = RunResult(watches=watches, split=split, candidate=checkpoint.candidate)
    result.cross_entropy = retrieval_cross_entropy(checkpoint.candidate, split, "test", truth=truth)
    result.retrieval["model"] = evaluate_retrieval(checkpoint.candidate, split)
    result.retrieval["most popular"] = evaluate_retrieval(MostPopular().fit(split.train), split)
    if split.n_items <= 20_000:
        result.retrieval["EASE"] = evaluate_retrieval(EASE().fit(split.train), split)
    settings = checkpoint.extra.get("ranking_examples")
    if checkpoint.ranking is not None and settings is not None:
        evaluate_logged_ranking(
            result,
            checkpoint.ranking,
            negatives=settings["negatives"],
            seed=settings["seed"],
            candidate=checkpoint.ranking_candidate,
        )
    print_result(console, result)
