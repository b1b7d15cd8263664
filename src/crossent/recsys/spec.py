"""What one recommender run is: a frozen, validated :class:`RunSpec`.

``crossent train``'s options are parsed once, before any data is read, into four sections:
the model (:class:`ModelSpec`), the objective (:class:`ObjectiveSpec`), the training schedule
and what is saved after it (:class:`TrainingSpec`) and the data (:class:`DataSpec`). Each
section checks its own values with :mod:`crossent._validation`, under its keyword names, so a
Python user who builds a spec gets ``history = 0 must be ...``; :meth:`RunSpec.from_options`
is the command line's boundary, where each keyword maps to its option as typed
(:data:`OPTION_NAMES`), once, and the same rule reads ``--history = 0 must be ...``. Every
default comes from :mod:`crossent.recsys.defaults`. :func:`crossent.recsys.run.run` carries a
spec out.

Example:
    >>> spec = RunSpec(model=ModelSpec(history=50))
    >>> spec.model.candidate(n_items=100, objective="full").history
    50
    >>> RunSpec.from_options(history=0)
    Traceback (most recent call last):
    ...
    crossent.errors.OptionError: --history = 0 must be an integer >= 1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, get_args

from crossent._validation.choices import (
    DataFormat,
    Objective,
    RankingLoss,
    StageName,
    check_choice,
)
from crossent._validation.numbers import check_bool, check_int, check_number
from crossent.errors import OptionError
from crossent.recsys import defaults
from crossent.recsys.data.simulate import SimulationConfig
from crossent.recsys.models.networks import CandidateShape
from crossent.recsys.training.loop import TrainConfig

#: The keyword a section checks -> the ``crossent train`` option that sets it.
OPTION_NAMES: Mapping[str, str] = MappingProxyType({
    "stage": "--stage", "model": "--model", "objective": "--loss",
    "ranking_loss": "--loss", "dim": "--dim", "history": "--history", "dropout": "--dropout",
    "blocks": "--blocks", "tie_embeddings": "--tie-embeddings", "epochs": "--epochs",
    "batch_size": "--batch-size", "lr": "--lr", "lr_schedule": "--lr-schedule",
    "weight_decay": "--weight-decay", "patience": "--patience",
    "max_examples": "--max-examples", "seed": "--seed", "refit": "--refit",
    "catch_up": "--catch-up", "format": "--format", "min_rating": "--min-rating",
    "users": "--users", "videos": "--videos", "negatives": "--negatives",
    "holdout": "--holdout", "eval_users": "--eval-users", "blend": "--blend",
})


#: The model section: the candidate model's shape, checked by its own rules (the catalogue size
#: and the objective come later, from the data and :class:`ObjectiveSpec`).
ModelSpec = CandidateShape


@dataclass(frozen=True)
class ObjectiveSpec:
    """What the candidate model is trained to minimise (several: the same model under each,
    one table) and the ranking stage's loss."""

    retrieval: tuple[Objective, ...] = ("full",)
    ranking: RankingLoss = "bce"

    def __post_init__(self) -> None:
        if not self.retrieval:
            raise OptionError(
                "objective", lambda n: f"{n} is empty; give one of {', '.join(get_args(Objective))}"
            )
        for objective in self.retrieval:
            check_choice(objective, "objective", Objective)
        check_choice(self.ranking, "ranking_loss", RankingLoss)


@dataclass(frozen=True)
class TrainingSpec:
    """The candidate model's schedule, and what is saved once early stopping has chosen."""

    schedule: TrainConfig = field(default_factory=TrainConfig)
    #: retrain a fresh model on every watch for the epochs early stopping chose
    refit: bool = False
    #: otherwise train the early-stopped model this many epochs on every watch (0: none)
    catch_up: int = defaults.CATCH_UP
    #: the ranking stage's schedule (``None``: :meth:`ranking_schedule`'s default)
    ranking: TrainConfig | None = None
    #: a sequence model is saved blended with the bag model trained beside it, with this
    #: weight on the bag (:class:`~crossent.recsys.models.networks.BlendedCandidate`; 0: the
    #: sequence model alone; ``None``: chosen on validation among
    #: :data:`~crossent.recsys.defaults.BLEND_WEIGHTS`)
    blend: float | None = defaults.BLEND

    def __post_init__(self) -> None:
        check_bool(self.refit, "refit")
        check_int(self.catch_up, "catch_up", low=0)
        if self.blend is not None:
            check_number(self.blend, "blend", low=0.0, high=1.0, high_open=True, none_ok=True)

    def blend_weights(self) -> tuple[float, ...]:
        """The bag weights validation chooses among (one: no choice)."""
        return defaults.BLEND_WEIGHTS if self.blend is None else (float(self.blend),)

    def ranking_schedule(self) -> TrainConfig:
        """The ranking stage's schedule: :attr:`ranking`, or by default the run's epochs, seed
        and resume with the ranking stage's own rate and batch."""
        if self.ranking is not None:
            return self.ranking
        return TrainConfig(
            epochs=self.schedule.epochs, lr=3e-3, batch_size=1024, seed=self.schedule.seed,
            resume=self.schedule.resume,
        )


@dataclass(frozen=True)
class DataSpec:
    """Where the watches come from (a file, or ``"simulated"``) and how the ranking stage makes
    its examples from them."""

    source: str = "simulated"
    format: DataFormat = "auto"
    #: rated data: keep ratings >= this as watches (``None``: every row is a watch)
    min_rating: float | None = None
    #: the simulated log's size
    users: int = 4000
    videos: int = 1000
    #: ranking examples per watch: the watch and this many unwatched videos
    negatives: int = 4
    #: the ranking stage's features come from a model trained without each user's last
    #: ``holdout`` training watches (see :mod:`crossent.recsys.ranking_stage`)
    holdout: int = 5
    #: retrieval: validate and test on this many sampled users (0: all; see
    #: :func:`~crossent.recsys.data.interactions.leave_last_out`); the ranking stage always
    #: evaluates every user
    eval_users: int = defaults.EVAL_USERS

    def __post_init__(self) -> None:
        check_choice(self.format, "format", DataFormat)
        if self.min_rating is not None:
            check_number(self.min_rating, "min_rating")
        for name in ("users", "videos", "negatives"):
            check_int(getattr(self, name), name, low=1)
        check_int(self.holdout, "holdout", low=0)
        check_int(self.eval_users, "eval_users", low=0)
        if self.videos < 6:
            videos = self.videos
            raise OptionError(
                "videos",
                lambda n: f"{n} {videos} is too small: the simulated log needs at least 6 "
                "videos (3 watches per user for leave-last-out, and as many unwatched to show)",
            )

    @property
    def simulated(self) -> bool:
        return self.source == "simulated"

    def simulation(self, seed: int) -> SimulationConfig:
        """The simulated world of ``crossent train --data simulated``: every user keeps at least
        ``impressions_per_user`` unwatched videos to be shown."""
        return SimulationConfig(
            n_users=self.users, n_videos=self.videos, seed=seed,
            min_watches=min(8, self.videos // 2), max_watches=min(40, self.videos // 2),
            impressions_per_user=min(20, self.videos // 2),
        )


@dataclass(frozen=True)
class RunSpec:
    """One run: which stages, and the four sections (see the module docstring)."""

    stage: StageName = "retrieval"
    model: ModelSpec = field(default_factory=ModelSpec)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    data: DataSpec = field(default_factory=DataSpec)

    def __post_init__(self) -> None:
        check_choice(self.stage, "stage", StageName)
        blend = self.training.blend
        if blend and self.model.model != "sequence":
            raise OptionError(
                "blend", lambda n: f"{n} {blend} blends a sequence model with its bag model: "
                f"it needs model = 'sequence', not {self.model.model!r}"
            )
        if blend and (self.stage == "ranking" or self.data.simulated):
            where = "the ranking stage" if self.stage == "ranking" else "simulated data"
            raise OptionError(
                "blend", lambda n: f"{n} {blend}: the blend is saved by retrieval on a watch "
                f"log, not with {where}"
            )

    @classmethod
    def from_options(cls, **options: Any) -> RunSpec:
        """The spec of ``crossent train``'s options (keywords as :data:`OPTION_NAMES`'s keys,
        ``loss`` as its comma list); a bad value names the option as typed."""
        try:
            return cls._build(dict(options))
        except OptionError as error:
            raise error.renamed(OPTION_NAMES.get(error.name, error.name)) from None

    @classmethod
    def _build(cls, options: dict[str, Any]) -> RunSpec:
        stage = check_choice(options.pop("stage", "retrieval"), "stage", StageName)
        loss = options.pop("loss", None)
        names = tuple(name.strip() for name in (loss or "").split(",") if name.strip())
        if stage == "ranking":
            objective = ObjectiveSpec(ranking=names[0] if names else "bce")  # type: ignore[arg-type]
            if len(names) > 1:
                raise OptionError("ranking_loss", lambda n: f"{n} takes one ranking loss: {loss}")
        elif not loss:
            objective = ObjectiveSpec()
        else:
            objective = ObjectiveSpec(retrieval=names)  # type: ignore[arg-type]
        model = ModelSpec(**_take(options, ModelSpec))
        data = DataSpec(**_take(options, DataSpec, source="data"))
        schedule = TrainConfig(**_take(options, TrainConfig))
        training = TrainingSpec(schedule=schedule, **_take(options, TrainingSpec))
        if options:
            raise TypeError(f"RunSpec.from_options got unknown options {sorted(options)}")
        return cls(stage=stage, model=model, objective=objective, training=training, data=data)


def _take(options: dict[str, Any], section: type, **renamed: str) -> dict[str, Any]:
    """Pop the options that are fields of ``section`` (``renamed``: field -> option key)."""
    taken = {}
    for name in (each.name for each in fields(section)):
        key = renamed.get(name, name)
        if key in options:
            taken[name] = options.pop(key)
    return taken
