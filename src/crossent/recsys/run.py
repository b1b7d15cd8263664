"""One recommender run: :func:`run` carries a :class:`~crossent.recsys.spec.RunSpec` out on a
watch log or a simulated world and returns an immutable
:class:`~crossent.recsys.results.RunResult`.

Each stage is a function from a result to a new result, composed here in one place: candidate
generation (one objective, or several compared: :mod:`crossent.recsys.retrieval`) with its
baselines; on a simulated world the oracle; on a watch log what is saved after early stopping
(the catch-up or the refit); then, if asked, the ranking stage
(:mod:`crossent.recsys.ranking_stage`). ``crossent train`` and ``crossent demo`` parse their
options into a spec and render what this returns.
"""

from __future__ import annotations

import dataclasses

from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.data.simulate import SimulatedWatchLog, SimulationConfig, simulate
from crossent.recsys.evaluation.next_watch import TruthFn, TruthScorer, simulated_truth
from crossent.recsys.evaluation.protocol import evaluate_retrieval
from crossent.recsys.events import Listener, note
from crossent.recsys.ranking_stage import train_logged_ranking, train_simulated_ranking
from crossent.recsys.results import RunResult
from crossent.recsys.retrieval import compare_objectives, train_retrieval
from crossent.recsys.saved_model import saved_model
from crossent.recsys.spec import RunSpec, TrainingSpec
from crossent.recsys.training.loop import TrainConfig
from crossent.recsys.training.parallel import Launch


def run(
    spec: RunSpec,
    source: Interactions | SimulationConfig,
    *,
    launch: Launch | None = None,
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """Train and evaluate what ``spec`` asks for on a watch log or a simulated world.

    With a multi-process ``launch`` (torchrun) only retrieval with one objective runs; the
    ranks other than 0 return after training, with no metrics.
    """
    distributed = launch is not None and launch.distributed
    ranking = spec.stage == "ranking"
    several = len(spec.objective.retrieval) > 1
    if distributed and (several or (ranking and isinstance(source, Interactions))):
        raise CrossentError(
            "comparing objectives, and --stage ranking on a file, run in one process "
            "(not torchrun)"
        )
    log = None
    if isinstance(source, SimulationConfig):
        note(
            listener, "simulating",
            f"{source.n_users:,} users x {source.n_videos:,} videos (seed {source.seed})",
        )
        log = simulate(source)
    watches = log.interactions if log is not None else source
    assert isinstance(watches, Interactions)
    truth = simulated_truth(log) if log is not None else None
    result = _candidates(spec, watches, truth, launch, progress, listener)
    if launch is not None and not launch.is_main:
        return result
    if log is not None:
        result = _with_oracle(result, log, truth, progress)
    elif not ranking and not distributed:
        result = saved_model(spec.training, result, progress=progress, listener=listener)
    if ranking:
        result = _ranking_stage(spec, result, log, progress, listener)
    return result


def _candidates(
    spec: RunSpec,
    watches: Interactions,
    truth: TruthFn | None,
    launch: Launch | None,
    progress: bool,
    listener: Listener | None,
) -> RunResult:
    """Candidate generation beside its baselines: one objective, or several compared (the
    ranking stage, if any, takes its features from the first)."""
    objectives = spec.objective.retrieval
    schedule = spec.training.schedule
    # the ranking stage takes every user's last two watches as its validation and test
    # examples, so the candidate generator under it must not have trained on any of them
    eval_users = 0 if spec.stage == "ranking" else spec.data.eval_users
    if len(objectives) > 1:
        return compare_objectives(
            watches, objectives, model=spec.model, train_config=schedule, truth=truth,
            progress=progress, listener=listener, eval_users=eval_users,
        )
    return train_retrieval(
        watches, model=spec.model, objective=objectives[0], train_config=schedule,
        truth=truth, progress=progress, listener=listener, launch=launch,
        eval_users=eval_users,
    )


def _with_oracle(
    result: RunResult, log: SimulatedWatchLog, truth: TruthFn | None, progress: bool
) -> RunResult:
    """The simulated world's oracle row (ranking by the true next-watch distribution) and its
    settings."""
    assert truth is not None
    oracle = evaluate_retrieval(TruthScorer(truth), result.split, progress=progress)
    return result.adding(retrieval={"truth (oracle)": oracle}, info={"simulation": log.config})


def _ranking_stage(
    spec: RunSpec,
    result: RunResult,
    log: SimulatedWatchLog | None,
    progress: bool,
    listener: Listener | None,
) -> RunResult:
    """P(watch) on the simulator's impressions, or on a watch log's watches and sampled
    unwatched videos."""
    schedule = spec.training.ranking_schedule()
    if log is not None:
        return train_simulated_ranking(
            result, log, loss=spec.objective.ranking, train_config=schedule,
            progress=progress, listener=listener,
        )
    return train_logged_ranking(
        result,
        negatives=spec.data.negatives,
        seed=spec.training.schedule.seed,
        holdout=spec.data.holdout,
        loss=spec.objective.ranking,
        train_config=schedule,
        candidate_train_config=spec.training.schedule,
        progress=progress,
        listener=listener,
    )


#: The demo's default world and schedule: enough users per video that the sequence model's
#: estimation error is small beside the entropy of the truth, one attention block (the
#: simulator's next-watch query is a mix of the history's mean taste and the previous watch,
#: which one block represents), separate output embeddings (the simulator's transition maps a
#: watch to other videos, not to itself), a cosine-decayed learning rate and uniformly random
#: batches (the windows are at most 40 long, so grouping them by length saves little, and
#: its batches of one length train a less exact model). The README's demo section has the
#: measurements behind each choice.
DEMO_USERS, DEMO_VIDEOS, DEMO_EPOCHS = 10_000, 500, 5
DEMO_MODEL = {"dim": 32, "history": 40, "dropout": 0.0, "blocks": 1, "tie_embeddings": False}
#: the demo's schedule; 1066 real targets are 51 windows of its world (21 targets each).
DEMO_LR, DEMO_BATCH = 0.02, 1066
#: ``--quick``: a tiny world and 2 epochs.
QUICK_USERS, QUICK_VIDEOS, QUICK_EPOCHS = 600, 300, 2


def demo_setup(
    *,
    quick: bool = False,
    users: int | None = None,
    videos: int | None = None,
    epochs: int | None = None,
    loss: str = "full",
    model: str = "sequence",
    seed: int = 0,
) -> tuple[SimulationConfig, RunSpec]:
    """``crossent demo``'s simulated world and the run it makes there (both stages).

    ``users``, ``videos`` and ``epochs`` override the defaults (:data:`DEMO_USERS`, ...).

    Example:
        >>> world, spec = demo_setup(quick=True)
        >>> world.n_users, spec.model.blocks, spec.training.schedule.lr_schedule
        (600, 1, 'cosine')
    """
    sizes = (
        (QUICK_USERS, QUICK_VIDEOS, QUICK_EPOCHS) if quick
        else (DEMO_USERS, DEMO_VIDEOS, DEMO_EPOCHS)
    )
    n_videos, n_epochs = videos or sizes[1], epochs or sizes[2]
    config = SimulationConfig(
        n_users=users or sizes[0],
        n_videos=n_videos,
        seed=seed,
        max_watches=min(40, n_videos // 2),
        impressions_per_user=min(20, n_videos // 2),
    )
    schedule = TrainConfig(
        epochs=n_epochs, seed=seed, lr=DEMO_LR, lr_schedule="cosine", batch_size=DEMO_BATCH,
        bucket=False, patience=2,
    )
    ranking = TrainConfig(epochs=n_epochs, seed=seed, lr=1e-2, batch_size=1024, patience=1)
    spec = RunSpec.from_options(loss=loss, model=model, **DEMO_MODEL)
    return config, dataclasses.replace(
        spec, stage="ranking", training=TrainingSpec(schedule, ranking=ranking, catch_up=0)
    )
