"""`crossent evaluate`: metrics of a trained recommender, beside the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crossent._validation.choices import DataFormat
from crossent.cli._console import make_console
from crossent.cli._options import listed, one_of


def evaluate(
    model: Annotated[Path, typer.Option(help="Folder written by `crossent train`.")],
    data: Annotated[
        str | None,
        typer.Option(
            help='Evaluate on this file (or "simulated") instead of reporting the '
            "metrics measured after training. Same ids as the training data."
        ),
    ] = None,
    format: Annotated[
        str, typer.Option(callback=one_of(DataFormat), help=f"{listed(DataFormat)}.")
    ] = (
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

    from crossent.cli._events import RichListener
    from crossent.cli._recsys_common import load_watches, print_result
    from crossent.recsys.reevaluate import evaluate_checkpoint
    from crossent.recsys.serving.checkpoint import load_checkpoint

    console = make_console()
    checkpoint = load_checkpoint(model)
    if data is None:
        for name, metrics in checkpoint.metrics.items():
            shown = ", ".join(f"{key} {value:.4g}" for key, value in metrics.items())
            console.print(f"[bold]{name}[/]: {shown}")
        return
    watches = None
    if data != "simulated":
        rating = min_rating if min_rating is not None else checkpoint.extra.get("min_rating")
        watches = load_watches(data, format, rating)
    print_result(
        console, evaluate_checkpoint(checkpoint, watches, listener=RichListener(console))
    )
