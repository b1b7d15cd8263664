"""`crossent demo`: the YouTube-style recommender on the built-in simulated watch log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from crossent._validation.choices import CandidateKind, Objective
from crossent.cli._console import make_console
from crossent.cli._options import JsonFileOption, ThreadsOption, each_of, one_of


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
    threads: ThreadsOption = None,
    json_file: JsonFileOption = None,
) -> None:
    """Simulate a watch log, train candidate generation and ranking, compare with baselines.

    Candidate generation predicts the next watch with a softmax over the whole catalogue;
    ranking predicts P(watch) of impressions. Both are shown beside most-popular, tuned EASE,
    the bag model and the Bayes limit (the entropy of the simulator's true distributions).
    Writes OUT/report.html with loss and validation NDCG curves and a reliability diagram.
    """

    from crossent._runtime import configure_threads, keep_freed_memory
    from crossent.cli._events import RichListener
    from crossent.cli._recsys_common import print_bayes_gaps, print_result
    from crossent.recsys.report import write_report, write_tables_json
    from crossent.recsys.run import demo_setup, run
    from crossent.recsys.serving.checkpoint import save_checkpoint

    configure_threads(threads)
    keep_freed_memory()
    console = make_console()
    start = time.perf_counter()
    config, spec = demo_setup(
        quick=quick, users=users, videos=videos, epochs=epochs, loss=loss, model=model,
        seed=seed,
    )
    result = run(spec, config, listener=RichListener(console))
    print_result(console, result)
    if json_file is not None:
        write_tables_json(result, json_file)
    report = write_report(result, out, title="crossent demo: watch prediction on a simulated log")
    save_checkpoint(
        out / "model",
        result.candidate,
        result.watches,
        ranking=result.ranking,
        curves=result.curves,
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

