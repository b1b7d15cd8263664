"""`crossent demo`: the YouTube-style recommender on the built-in simulated watch log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from crossent._validation.choices import CandidateKind, Objective
from crossent.cli._options import each_of, one_of


def demo(
    out: Annotated[Path, typer.Option(help="Folder for report.html and the PNG figures.")] = Path(
        "crossent-report"
    ),
    quick: Annotated[bool, typer.Option(help="A tiny world and 2 epochs (seconds).")] = False,
    users: Annotated[int | None, typer.Option(help="Simulated users.")] = None,
    videos: Annotated[int | None, typer.Option(help="Simulated videos.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs per stage.")] = None,
    loss: Annotated[
        str,
        typer.Option(
            callback=each_of(Objective),
            help="Retrieval objective: full, sampled, bce, gbce or in-batch; a comma list "
            "trains the same model under each."
        ),
    ] = "full",
    model: Annotated[
        str, typer.Option(callback=one_of(CandidateKind), help="Candidate model: sequence or bag.")
    ] = "sequence",
    seed: Annotated[int, typer.Option(help="Seed of the simulation and the training.")] = 0,
) -> None:
    """Simulate a watch log, train candidate generation and ranking, compare with baselines.

    Candidate generation predicts the next watch with a softmax over the whole catalogue;
    ranking predicts P(watch) of impressions. Both are shown beside most-popular, tuned EASE,
    the bag model and the Bayes limit (the entropy of the simulator's true distributions).
    Writes OUT/report.html with loss and validation NDCG curves and a reliability diagram.
    """
    from rich.console import Console

    from crossent.cli._recsys_common import print_bayes_gaps, print_result
    from crossent.recsys.checkpoint import save_checkpoint
    from crossent.recsys.pipeline import run_simulated
    from crossent.recsys.report import write_report
    from crossent.recsys.run import TrainRequest
    from crossent.recsys.simulate import SimulationConfig
    from crossent.recsys.train import TrainConfig

    console = Console()
    start = time.perf_counter()
    sizes = (600, 300, 2) if quick else (DEMO_USERS, DEMO_VIDEOS, DEMO_EPOCHS)
    config = SimulationConfig(
        n_users=users or sizes[0],
        n_videos=videos or sizes[1],
        seed=seed,
        max_watches=min(40, (videos or sizes[1]) // 2),
        impressions_per_user=min(20, (videos or sizes[1]) // 2),
    )
    n_epochs = epochs or sizes[2]
    request = TrainRequest.parse(
        "retrieval", loss, model, dim=DEMO_DIM, history=DEMO_HISTORY, dropout=DEMO_DROPOUT,
        train=TrainConfig(epochs=n_epochs, seed=seed, lr=DEMO_LR, batch_size=DEMO_BATCH,
                          patience=2),
    )
    result, _ = run_simulated(
        config,
        objectives=request.objectives,
        model_config=request.model_config(),
        train_config=request.train,
        ranking_config=TrainConfig(
            epochs=n_epochs, seed=seed, lr=1e-2, batch_size=1024, patience=1
        ),
        console=console,
    )
    print_result(console, result)
    report = write_report(result, out, title="crossent demo: watch prediction on a simulated log")
    save_checkpoint(
        out / "model",
        result.candidate,
        result.watches,
        ranking=result.ranking,
        history=result.histories,
        metrics={"cross_entropy": result.cross_entropy, **result.retrieval},
        extra={"data": "simulated", "simulation": vars(config)},
    )
    print_bayes_gaps(console, result)
    ranking = result.ranking_metrics["model"]
    console.print(
        f"ranking log loss {ranking['log_loss_bits']:.4f} bits vs true probabilities "
        f"{ranking['truth_bits']:.4f} bits "
        f"(+{100 * (ranking['log_loss_nats'] / ranking['truth_nats'] - 1):.1f}%)"
    )
    console.print(
        f"report: {report}  model: {out / 'model'}  ({time.perf_counter() - start:.0f} s)"
    )


#: The demo's default world and schedule.
DEMO_USERS = 2000
DEMO_VIDEOS = 500
DEMO_EPOCHS = 10
DEMO_LR = 0.01
DEMO_BATCH = 1024
DEMO_DIM = 32
DEMO_HISTORY = 40
DEMO_DROPOUT = 0.0
