"""One training run as ``crossent train`` describes it: a :class:`TrainRequest` in, a
:class:`~crossent.recsys.results.RunResult` out.

The command parses its options into a request, loads the data, calls :func:`run_training` and
renders the result; every decision about what to train lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

from crossent._validation.choices import StageName, not_a_choice
from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.recsys import defaults
from crossent.recsys.data import Interactions
from crossent.recsys.events import Listener
from crossent.recsys.models import CandidateKind, Objective, RankingLoss
from crossent.recsys.parallel import Launch
from crossent.recsys.pipeline import run_simulated
from crossent.recsys.ranking_stage import train_logged_ranking
from crossent.recsys.results import RunResult
from crossent.recsys.retrieval import (
    catch_up_on_all_watches,
    compare_objectives,
    refit_on_all_watches,
    train_retrieval,
)
from crossent.recsys.simulate import SimulationConfig
from crossent.recsys.train import TrainConfig


def parse_choices(text: str, kind: Any, option: str) -> tuple[str, ...]:
    """``"a,b"`` -> ``("a", "b")``, each one of the ``Literal`` type ``kind``'s values.

    Raises:
        CrossentError: an empty list or a value outside ``kind``, naming ``option``.
    """
    allowed = get_args(kind)
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise CrossentError(f"{option} is empty; give one of {', '.join(allowed)}")
    for name in names:
        if name not in allowed:
            raise not_a_choice(option, name, allowed)
    return names


@dataclass(frozen=True)
class TrainRequest:
    """What to train: the parsed options of ``crossent train`` (see its ``--help``)."""

    stage: StageName = "retrieval"
    model: CandidateKind = "sequence"
    objectives: tuple[Objective, ...] = ("full",)
    ranking_loss: RankingLoss = "bce"
    dim: int = defaults.DIM
    history: int = defaults.HISTORY
    dropout: float = defaults.DROPOUT
    blocks: int = defaults.BLOCKS
    tie_embeddings: bool = defaults.TIE_EMBEDDINGS
    train: TrainConfig = field(default_factory=TrainConfig)
    negatives: int = 4
    holdout: int = 5
    #: retrain the saved retrieval model on every watch for the epochs early stopping chose
    refit: bool = False
    #: then train the early-stopped model this many epochs on every watch (without --refit)
    catch_up: int = defaults.CATCH_UP

    def __post_init__(self) -> None:
        check_int(self.catch_up, "catch_up", low=0)

    @classmethod
    def parse(cls, stage: str, loss: str, model: str, **options: Any) -> TrainRequest:
        """Check and narrow the command's text options (``loss`` is a comma list)."""
        (stage_name,) = _narrow(parse_choices(stage, StageName, "--stage"), StageName)
        (model_name,) = _narrow(parse_choices(model, CandidateKind, "--model"), CandidateKind)
        if stage_name == "ranking":
            (ranking,) = _narrow(parse_choices(loss or "bce", RankingLoss, "--loss"), RankingLoss)
            return cls(stage="ranking", model=model_name, ranking_loss=ranking, **options)
        objectives = _narrow(parse_choices(loss or "full", Objective, "--loss"), Objective)
        return cls(model=model_name, objectives=objectives, **options)

    def model_config(self) -> dict[str, Any]:
        return {
            "model": self.model, "dim": self.dim, "history": self.history,
            "dropout": self.dropout, "blocks": self.blocks,
            "tie_embeddings": self.tie_embeddings and self.model == "sequence",
        }

    def ranking_train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.train.epochs, lr=3e-3, batch_size=1024, seed=self.train.seed,
            resume=self.train.resume,
        )


def _narrow(names: tuple[str, ...], kind: Any) -> tuple[Any, ...]:
    """``names`` as values of the ``Literal`` ``kind`` (already checked by parse_choices)."""
    return tuple(choice for name in names for choice in get_args(kind) if choice == name)


def simulation_config(users: int, videos: int, seed: int) -> SimulationConfig:
    """The simulated world of ``crossent train --data simulated``."""
    if videos < 6:
        raise CrossentError(
            f"--videos {videos} is too small: the simulated log needs at least 6 videos "
            "(3 watches per user for leave-last-out, and as many unwatched to show)"
        )
    # every user keeps at least impressions_per_user unwatched videos to be shown
    return SimulationConfig(
        n_users=users,
        n_videos=videos,
        seed=seed,
        min_watches=min(8, videos // 2),
        max_watches=min(40, videos // 2),
        impressions_per_user=min(20, videos // 2),
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
) -> tuple[SimulationConfig, TrainRequest, TrainConfig]:
    """``crossent demo``'s simulated world, its retrieval request and the ranking schedule.

    ``users``, ``videos`` and ``epochs`` override the defaults (:data:`DEMO_USERS`, ...).
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
    request = TrainRequest.parse(
        "retrieval", loss, model, **DEMO_MODEL,
        train=TrainConfig(
            epochs=n_epochs, seed=seed, lr=DEMO_LR, lr_schedule="cosine",
            batch_size=DEMO_BATCH, bucket=False, patience=2,
        ),
    )
    ranking = TrainConfig(epochs=n_epochs, seed=seed, lr=1e-2, batch_size=1024, patience=1)
    return config, request, ranking


def run_training(
    source: Interactions | SimulationConfig,
    request: TrainRequest,
    *,
    launch: Launch,
    listener: Listener | None = None,
) -> RunResult:
    """Train and evaluate what ``request`` asks for on a watch log or a simulated world."""
    ranking = request.stage == "ranking"
    several = len(request.objectives) > 1
    if launch.distributed and (several or (ranking and isinstance(source, Interactions))):
        raise CrossentError(
            "comparing objectives, and --stage ranking on a file, run in one process "
            "(not torchrun)"
        )
    if isinstance(source, SimulationConfig):
        result, _ = run_simulated(
            source,
            objectives=("full",) if ranking else request.objectives,
            model_config=request.model_config(),
            train_config=request.train,
            ranking_config=request.ranking_train_config(),
            ranking_loss=request.ranking_loss,
            stages=("retrieval", "ranking") if ranking else ("retrieval",),
            listener=listener,
            launch=launch,
        )
        return result
    if several:
        return compare_objectives(
            source, request.objectives, model_config=request.model_config(),
            train_config=request.train, listener=listener,
        )
    objective = "full" if ranking else request.objectives[0]
    result = train_retrieval(
        source,
        model_config={**request.model_config(), "objective": objective},
        train_config=request.train,
        listener=listener,
        launch=launch,
    )
    if not ranking and not launch.distributed:
        if request.refit:
            refit_on_all_watches(result, request.train, listener=listener)
        elif request.catch_up:
            catch_up_on_all_watches(result, request.train, request.catch_up, listener=listener)
    if ranking:
        train_logged_ranking(
            result,
            negatives=request.negatives,
            seed=request.train.seed,
            holdout=request.holdout,
            loss=request.ranking_loss,
            train_config=request.ranking_train_config(),
            candidate_train_config=request.train,
            listener=listener,
        )
    return result
