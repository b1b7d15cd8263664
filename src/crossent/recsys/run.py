"""One training run as ``crossent train`` describes it: a :class:`TrainRequest` in, a
:class:`~crossent.recsys.results.RunResult` out.

The command parses its options into a request, loads the data, calls :func:`run_training` and
renders the result; every decision about what to train lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

from rich.console import Console

from crossent._validation.choices import StageName
from crossent.errors import CrossentError
from crossent.recsys.data import Interactions
from crossent.recsys.models import CandidateKind, Objective, RankingLoss
from crossent.recsys.parallel import Launch
from crossent.recsys.pipeline import run_simulated, train_logged_ranking
from crossent.recsys.results import RunResult
from crossent.recsys.retrieval import compare_objectives, train_retrieval
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
            raise CrossentError(f"{option} {name!r} must be one of {', '.join(allowed)}")
    return names


@dataclass(frozen=True)
class TrainRequest:
    """What to train: the parsed options of ``crossent train`` (see its ``--help``)."""

    stage: StageName = "retrieval"
    model: CandidateKind = "sequence"
    objectives: tuple[Objective, ...] = ("full",)
    ranking_loss: RankingLoss = "bce"
    dim: int = 64
    history: int = 50
    dropout: float = 0.2
    train: TrainConfig = field(default_factory=TrainConfig)
    negatives: int = 4
    holdout: int = 5

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
            "dropout": self.dropout,
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


def run_training(
    source: Interactions | SimulationConfig,
    request: TrainRequest,
    *,
    launch: Launch,
    console: Console | None = None,
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
            console=console,
            launch=launch,
        )
        return result
    if several:
        return compare_objectives(
            source, request.objectives, model_config=request.model_config(),
            train_config=request.train, console=console,
        )
    objective = "full" if ranking else request.objectives[0]
    result = train_retrieval(
        source,
        model_config={**request.model_config(), "objective": objective},
        train_config=request.train,
        console=console,
        launch=launch,
    )
    if ranking:
        train_logged_ranking(
            result,
            negatives=request.negatives,
            seed=request.train.seed,
            holdout=request.holdout,
            loss=request.ranking_loss,
            train_config=request.ranking_train_config(),
            candidate_train_config=request.train,
            console=console,
        )
    return result
