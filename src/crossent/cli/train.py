"""`crossent train`: train the recommender on an interaction file or the simulated log."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

import typer

from crossent._validation.choices import (
    CandidateKind,
    DataFormat,
    LrSchedule,
    Objective,
    RankingLoss,
    StageName,
)
from crossent.cli._console import make_console
from crossent.cli._options import JsonFileOption, ThreadsOption, each_of, listed, one_of
from crossent.recsys import defaults

DataOption = Annotated[
    str,
    typer.Option(
        help="Interaction file (MovieLens ratings.csv, u.data, ratings.dat, RecBole "
        '.inter, CSV/Parquet) or "simulated".'
    ),
]

OutOption = Annotated[Path, typer.Option(help="Folder for the checkpoint.")]

FormatOption = Annotated[
    str, typer.Option(callback=one_of(DataFormat), help=f"{listed(DataFormat)}.")
]

StageOption = Annotated[
    str,
    typer.Option(
        callback=one_of(StageName),
        help="retrieval (candidate generation) or ranking (both stages; on a file, "
        "ranking examples are each watch plus --negatives popular unwatched videos)."
    ),
]

LossOption = Annotated[
    str,
    typer.Option(
        callback=each_of(Literal[Objective, RankingLoss]),
        help="Retrieval: full (exact softmax), sampled (log Q corrected), bce (one "
        "negative), gbce (gSASRec) or in-batch; a comma list (full,sampled,bce,gbce) "
        "trains the same model under each and prints a table. Ranking: bce, focal or "
        "watch-time (retrieval then uses the full softmax)."
    ),
]

ModelOption = Annotated[
    str,
    typer.Option(
        callback=one_of(CandidateKind),
        help="Candidate model: sequence (self-attention over the ordered history) or bag "
        "(mean of the history's embeddings)."
    ),
]

MinRatingOption = Annotated[
    float, typer.Option(help="Rated data: keep ratings >= this as watches.")
]

EpochsOption = Annotated[int, typer.Option(help="Most epochs per stage.")]

PatienceOption = Annotated[
    int, typer.Option(help="Stop after this many epochs without a validation improvement.")
]

DimOption = Annotated[int, typer.Option(help="Embedding dimension.")]

HistoryOption = Annotated[int, typer.Option(help="Recent watches in the user vector.")]

DropoutOption = Annotated[float, typer.Option(help="Dropout of the sequence model.")]

BlocksOption = Annotated[int, typer.Option(help="Self-attention blocks of the sequence model.")]

TieOption = Annotated[
    bool | None,
    typer.Option(
        "--tie-embeddings/--separate-embeddings",
        help="Sequence model: score items with the input embeddings (tied, as SASRec) or "
        "with a separate output table. Default: tied in one process, separate under "
        "torchrun (the sharded softmax splits a separate output table across the ranks).",
        show_default=False,
    ),
]

ScheduleOption = Annotated[
    str,
    typer.Option(
        callback=one_of(LrSchedule),
        help="Learning rate over the run (retrieval): constant, or cosine (decays to 0 at "
        "--epochs).",
    ),
]

LrOption = Annotated[float, typer.Option(help="Adam learning rate (retrieval).")]

WeightDecayOption = Annotated[
    float, typer.Option(help="Decoupled weight decay (AdamW) for retrieval.")
]

BatchSizeOption = Annotated[
    int,
    typer.Option(help="Training targets per step, padding not counted (sequence: whole windows)."),
]

MaxExamplesOption = Annotated[
    int | None, typer.Option(help="At most this many training examples per epoch.")
]

UsersOption = Annotated[int, typer.Option(help="Simulated users.")]

VideosOption = Annotated[int, typer.Option(help="Simulated videos.")]

SeedOption = Annotated[int, typer.Option(help="Seed.")]

NegativesOption = Annotated[
    int,
    typer.Option(
        help="Ranking on a file: negatives per watch, drawn in proportion to popularity "
        "from the videos the user had not watched yet."
    ),
]

HoldoutOption = Annotated[
    int,
    typer.Option(
        help="Ranking on a file: the ranker trains on each user's last HOLDOUT training "
        "watches, with features from a candidate generator trained without them (0: on "
        "every training watch, features from the retrieval model)."
    ),
]

EvalUsersOption = Annotated[
    int,
    typer.Option(
        help="Retrieval: hold out the last two watches (validation, test) of this many users, "
        "sampled with --seed when more have 3 or more watches; every other user trains on "
        "all their watches (0: every user; --stage ranking always evaluates every user).",
    ),
]

RefitOption = Annotated[
    bool,
    typer.Option(
        "--refit/--no-refit",
        help="Retrieval on a file: after early stopping has chosen the epochs, train the "
        "saved model again on every watch, the validation and test ones included, for that "
        "many epochs (the tables still report the model that never saw the test watches).",
    ),
]

CatchUpOption = Annotated[
    int,
    typer.Option(
        "--catch-up",
        help="Retrieval on a file: after early stopping, train the kept model this many more "
        "epochs on every watch, the validation and test ones included, the learning rate "
        "decaying to 0, and save that one (0: save the early-stopped model; the tables report "
        "it either way). Ignored with --refit.",
    ),
]

BlendOption = Annotated[
    float | None,
    typer.Option(
        "--blend",
        help="Retrieval on a file, sequence model: save it blended with the bag model trained "
        "beside it, their log-probabilities averaged with this weight on the bag (0: the "
        "sequence model alone; default: chosen on validation NDCG@10 among "
        + ", ".join(f"{w:g}" for w in defaults.BLEND_WEIGHTS) + "). Each member is caught up "
        "(or refitted) on its own schedule.",
        show_default=False,
    ),
]

ResumeOption = Annotated[
    bool,
    typer.Option(
        help="Continue an interrupted run from its last complete epoch (saved in "
        "OUT/training after every epoch); same options as the interrupted run."
    ),
]


def train(
    data: DataOption,
    out: OutOption,
    format: FormatOption = "auto",
    stage: StageOption = "retrieval",
    loss: LossOption = "",
    model: ModelOption = "sequence",
    min_rating: MinRatingOption = 4.0,
    epochs: EpochsOption = defaults.EPOCHS,
    patience: PatienceOption = defaults.PATIENCE,
    dim: DimOption = defaults.DIM,
    history: HistoryOption = defaults.HISTORY,
    dropout: DropoutOption = defaults.DROPOUT,
    blocks: BlocksOption = defaults.BLOCKS,
    tie_embeddings: TieOption = None,
    lr: LrOption = defaults.LR,
    lr_schedule: ScheduleOption = defaults.LR_SCHEDULE,
    weight_decay: WeightDecayOption = 0.0,
    batch_size: BatchSizeOption = defaults.BATCH_TARGETS,
    max_examples: MaxExamplesOption = None,
    refit: RefitOption = False,
    catch_up: CatchUpOption = defaults.CATCH_UP,
    blend: BlendOption = defaults.BLEND,
    users: UsersOption = 4000,
    videos: VideosOption = 1000,
    seed: SeedOption = 0,
    negatives: NegativesOption = 4,
    holdout: HoldoutOption = 5,
    eval_users: EvalUsersOption = defaults.EVAL_USERS,
    resume: ResumeOption = False,
    threads: ThreadsOption = None,
    json_file: JsonFileOption = None,
) -> None:
    """Train candidate generation (and ranking), evaluate beside baselines, save a checkpoint
    and OUT/report.html (tables, loss and validation NDCG curves).

    Several processes: torchrun --nproc-per-node N -m crossent train ... shards the catalogue
    softmax across them (gloo on CPU, nccl on CUDA); rank 0 reports and saves.
    """
    # the options a resumed run must repeat (threads and the JSON copy may change between runs)
    unchecked = ("out", "resume", "threads", "json_file")
    settings = {k: v for k, v in locals().items() if k not in unchecked}
    from crossent._runtime import configure_threads, keep_freed_memory

    configure_threads(threads)
    keep_freed_memory()

    from crossent.cli._events import RichListener
    from crossent.cli._recsys_common import load_watches, print_result
    from crossent.recsys.data.interactions import Interactions
    from crossent.recsys.data.simulate import SimulationConfig
    from crossent.recsys.data.titles import titles_for
    from crossent.recsys.report import write_report, write_tables_json
    from crossent.recsys.run import run
    from crossent.recsys.serving.checkpoint import save_checkpoint
    from crossent.recsys.spec import RunSpec
    from crossent.recsys.training.parallel import launch_from_env, shutdown
    from crossent.recsys.training.resume import stop_on_interrupt, training_state

    # every option checked, naming it as typed, before any data is read
    spec = RunSpec.from_options(
        stage=stage, loss=loss, model=model, dim=dim, history=history, dropout=dropout,
        blocks=blocks, tie_embeddings=tie_embeddings, epochs=epochs, lr=lr, lr_schedule=lr_schedule,
        weight_decay=weight_decay, batch_size=batch_size, max_examples=max_examples, seed=seed,
        patience=patience, refit=refit, catch_up=catch_up, data=data, format=format,
        min_rating=min_rating, users=users, videos=videos, negatives=negatives, holdout=holdout,
        eval_users=eval_users, blend=blend,
    )
    launch = launch_from_env()  # joins torchrun's process group, if launched by torchrun
    if launch.distributed and tie_embeddings is None:
        # the sharded softmax splits a separate output table across the ranks
        spec = replace(spec, model=replace(spec.model, tie_embeddings=False))
    console = make_console(quiet=not launch.is_main)
    state = training_state(
        out, settings, resume=resume, distributed=launch.distributed, say=console.print
    )
    schedule = replace(spec.training.schedule, resume=state)
    spec = replace(spec, training=replace(spec.training, schedule=schedule))
    extra: dict[str, object] = {"data": data, "format": format, "min_rating": min_rating}
    source: Interactions | SimulationConfig
    if spec.data.simulated:
        source = spec.data.simulation(seed)
        extra["simulation"] = vars(source)
    else:
        source = load_watches(data, format, min_rating)
    if isinstance(source, Interactions):
        console.print(f"loaded {source!r} from {data}")
    with stop_on_interrupt(state):  # Ctrl-C: one line naming the saved epochs
        result = run(spec, source, launch=launch, listener=RichListener(console))
    if not launch.is_main:  # the other ranks only train; rank 0 reports and saves
        shutdown(launch)
        return
    print_result(console, result)
    if json_file is not None:
        write_tables_json(result, json_file)
    report = write_report(result, out, title=f"crossent train: {data}")
    console.print(f"report: {report}")
    for key in ("refit_epochs", "catch_up_epochs", "split"):
        if key in result.info:
            extra[key] = result.info[key]
    if "ranking_examples" in result.info:
        extra["ranking_examples"] = result.info["ranking_examples"]
    path = save_checkpoint(
        out,
        result.candidate,
        result.watches,
        ranking=result.ranking,
        ranking_candidate=result.ranking_candidate,
        curves=result.curves,
        metrics={
            "cross_entropy": result.cross_entropy,
            **result.retrieval,
            **{f"ranking: {k}": v for k, v in result.ranking_metrics.items()},
        },
        extra=extra,
        titles=titles_for(data, result.watches.item_ids),
    )
    console.print(f"saved {path}")
    shutdown(launch)

