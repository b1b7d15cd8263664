"""`crossent train`: train the recommender on an interaction file or the simulated log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def train(
    data: Annotated[
        str,
        typer.Option(
            help="Interaction file (MovieLens ratings.csv, u.data, ratings.dat, RecBole "
            '.inter, CSV/Parquet) or "simulated".'
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the checkpoint.")],
    format: Annotated[str, typer.Option(help="auto, movielens, recbole, csv or parquet.")] = "auto",
    stage: Annotated[
        str,
        typer.Option(
            help="retrieval (candidate generation) or ranking (both stages; on a file, "
            "ranking examples are each watch plus --negatives popular unwatched videos)."
        ),
    ] = "retrieval",
    loss: Annotated[
        str,
        typer.Option(
            help="Retrieval: full, sampled or in-batch softmax. Ranking: bce, focal "
            "or watch-time (retrieval then uses the full softmax)."
        ),
    ] = "",
    min_rating: Annotated[
        float, typer.Option(help="Rated data: keep ratings >= this as watches.")
    ] = 4.0,
    epochs: Annotated[int, typer.Option(help="Most epochs per stage.")] = 20,
    dim: Annotated[int, typer.Option(help="Embedding dimension.")] = 64,
    history: Annotated[int, typer.Option(help="Recent watches in the user vector.")] = 50,
    lr: Annotated[float, typer.Option(help="Adam learning rate (retrieval).")] = 0.01,
    weight_decay: Annotated[
        float, typer.Option(help="Decoupled weight decay (AdamW) for retrieval.")
    ] = 0.1,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 512,
    max_examples: Annotated[
        int | None, typer.Option(help="At most this many training examples per epoch.")
    ] = None,
    users: Annotated[int, typer.Option(help="Simulated users.")] = 4000,
    videos: Annotated[int, typer.Option(help="Simulated videos.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    negatives: Annotated[
        int,
        typer.Option(
            help="Ranking on a file: negatives per watch, drawn in proportion to popularity "
            "from the videos the user had not watched yet."
        ),
    ] = 4,
    holdout: Annotated[
        int,
        typer.Option(
            help="Ranking on a file: the ranker trains on each user's last HOLDOUT training "
            "watches, with features from a candidate generator trained without them (0: on "
            "every training watch, features from the retrieval model)."
        ),
    ] = 5,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted run from its last complete epoch (saved in "
            "OUT/training after every epoch); same options as the interrupted run."
        ),
    ] = False,
) -> None:
    """Train candidate generation (and ranking), evaluate beside baselines, save a checkpoint.

    Several processes: torchrun --nproc-per-node N -m crossent train ... shards the catalogue
    softmax across them (gloo on CPU, nccl on CUDA); rank 0 reports and saves.
    """
    settings = {k: v for k, v in locals().items() if k not in ("out", "resume")}  # the options
    from rich.console import Console

    from crossent.cli._recsys_common import load_watches, print_result
    from crossent.errors import CrossentError
    from crossent.recsys.parallel import launch_from_env, shutdown
    from crossent.recsys.pipeline import run_simulated, train_logged_ranking, train_retrieval
    from crossent.recsys.resume import STATE_FOLDER, TrainingState
    from crossent.recsys.simulate import SimulationConfig
    from crossent.recsys.titles import titles_for
    from crossent.recsys.train import TrainConfig, save_checkpoint

    if stage not in ("retrieval", "ranking"):
        raise CrossentError(f"--stage {stage!r} must be retrieval or ranking")
    retrieval_losses, ranking_losses = (
        ("full", "sampled", "in-batch"),
        ("bce", "focal", "watch-time"),
    )
    allowed = retrieval_losses if stage == "retrieval" else ranking_losses
    loss = loss or allowed[0]
    if loss not in allowed:
        raise CrossentError(
            f"--loss {loss!r} must be one of {', '.join(allowed)} for --stage {stage}"
        )
    launch = launch_from_env()  # joins torchrun's process group, if launched by torchrun
    console = Console(quiet=not launch.is_main)
    if launch.distributed and resume:
        raise CrossentError("--resume runs in one process (not torchrun)")
    state = None  # torchrun: every rank would write the same folder
    if not launch.distributed:
        state = TrainingState(out / STATE_FOLDER, settings, resume=resume, say=console.print)
    restore_interrupt = state.stop_on_interrupt() if state is not None else lambda: None
    train_config = TrainConfig(
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        max_examples=max_examples,
        seed=seed,
        resume=state,
    )
    model_config: dict[str, object] = {"dim": dim, "history": history}
    extra: dict[str, object] = {"data": data, "format": format, "min_rating": min_rating}
    if data == "simulated":
        if videos < 6:
            raise CrossentError(
                f"--videos {videos} is too small: the simulated log needs at least 6 videos "
                "(3 watches per user for leave-last-out, and as many unwatched to show)"
            )
        # every user keeps at least impressions_per_user unwatched videos to be shown
        config = SimulationConfig(
            n_users=users,
            n_videos=videos,
            seed=seed,
            min_watches=min(8, videos // 2),
            max_watches=min(40, videos // 2),
            impressions_per_user=min(20, videos // 2),
        )
        result, _ = run_simulated(
            config,
            negatives="full" if stage == "ranking" else loss,  # type: ignore[arg-type]
            model_config=model_config,
            train_config=train_config,
            ranking_config=TrainConfig(
                epochs=epochs, lr=3e-3, batch_size=1024, seed=seed, resume=state
            ),
            ranking_loss=loss if stage == "ranking" else "bce",  # type: ignore[arg-type]
            stages=("retrieval", "ranking") if stage == "ranking" else ("retrieval",),
            console=console,
            launch=launch,
        )
        extra["simulation"] = vars(config)
    else:
        if stage == "ranking" and launch.distributed:
            raise CrossentError("--stage ranking on a file runs in one process (not torchrun)")
        watches = load_watches(data, format, min_rating)
        console.print(f"loaded {watches!r} from {data}")
        model_config["negatives"] = "full" if stage == "ranking" else loss
        result = train_retrieval(
            watches,
            model_config=model_config,
            train_config=train_config,
            console=console,
            launch=launch,
        )
        if stage == "ranking":
            train_logged_ranking(
                result,
                negatives=negatives,
                seed=seed,
                holdout=holdout,
                loss=loss,  # type: ignore[arg-type]
                train_config=TrainConfig(
                    epochs=epochs, lr=3e-3, batch_size=1024, seed=seed, resume=state
                ),
                candidate_train_config=train_config,
                console=console,
            )
            extra["ranking_examples"] = result.info["ranking_examples"]
    if not launch.is_main:  # the other ranks only train; rank 0 reports and saves
        shutdown(launch)
        return
    print_result(console, result)
    path = save_checkpoint(
        out,
        result.candidate,
        result.watches,
        ranking=result.ranking,
        ranking_candidate=result.ranking_candidate,
        history=result.histories,
        metrics={
            "cross_entropy": result.cross_entropy,
            **result.retrieval,
            **{f"ranking: {k}": v for k, v in result.ranking_metrics.items()},
        },
        extra=extra,
        titles=titles_for(data, result.watches.item_ids),
    )
    console.print(f"saved {path}")
    restore_interrupt()
    shutdown(launch)
