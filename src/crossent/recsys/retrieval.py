"""Candidate generation end to end: split, train, evaluate beside honest baselines.

Every run evaluates, by one protocol (:data:`crossent.recsys.results.PROTOCOL`), the trained
model beside most-popular, EASE with its λ tuned on the validation stage
(:func:`tune_ease`), and — when the model is the sequence model — the bag model trained with
the same settings. :func:`compare_objectives` trains the same model under several objectives
and records, per objective, the test metrics, the test cross-entropy, the training time and
the peak memory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch

from crossent._memory import reset_peak_rss, status_bytes
from crossent.errors import CrossentError, OptionError
from crossent.recsys import defaults
from crossent.recsys.data.interactions import Interactions, Split, leave_last_out
from crossent.recsys.evaluation.next_watch import TruthFn, retrieval_cross_entropy
from crossent.recsys.evaluation.protocol import evaluate_retrieval
from crossent.recsys.events import Listener, note
from crossent.recsys.models.baselines import EASE, EASE_MAX_ITEMS, MostPopular
from crossent.recsys.models.blend import bag_companion
from crossent.recsys.models.networks import CandidateConfig, CandidateModel, Objective
from crossent.recsys.results import RunResult
from crossent.recsys.spec import ModelSpec
from crossent.recsys.training.loop import (
    TrainConfig,
    TrainingCurves,
    fit_candidate,
)
from crossent.recsys.training.parallel import Launch, fit_candidate_distributed

#: EASE's λ grid, searched on the validation stage (Steck 2019 reports optima in the hundreds).
EASE_GRID = (20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)

#: The bag baseline's own optimiser settings, (lr, weight decay, targets per step):
#: ``crossent train``'s bag settings before the sequence model existed; epochs, patience and
#: seed follow the run's.
BAG_SCHEDULE = (0.01, 0.1, 512)


def tune_ease(
    split: Split, grid: Sequence[float] = EASE_GRID, *, progress: bool = False
) -> tuple[EASE, dict[float, float]]:
    """EASE fitted with the λ of ``grid`` that has the best validation NDCG@10.

    Returns the fitted model and ``{λ: validation NDCG@10}``. Test targets are never seen.
    """
    scores: dict[float, float] = {}
    best: EASE | None = None
    for lam in grid:
        model = EASE(lam=lam).fit(split.train)
        scores[lam] = evaluate_retrieval(model, split, "valid", ks=(10,), progress=progress)[
            "NDCG@10"
        ]
        if best is None or scores[lam] > scores[best.lam]:
            best = model
    if best is None:
        raise CrossentError("tune_ease needs at least one λ in grid")
    return best, scores


def _split(watches: Interactions, eval_users: int, seed: int) -> Split:
    split = leave_last_out(watches, max_users=eval_users, seed=seed)
    if len(split.users("test")) == 0:
        raise CrossentError(
            f"no user has 3 or more watches in {watches!r}; leave-last-out needs 3 per user"
        )
    return split


def _split_info(eval_users: int, seed: int) -> dict[str, object]:
    """What rebuilds the split (:mod:`crossent.recsys.reevaluate` reads it from the checkpoint)."""
    return {"split": {"eval_users": eval_users, "seed": seed}}


def _note_evaluated(split: Split, listener: Listener | None) -> None:
    held_out = len(split.users("test"))
    everyone = split.eligible_users()
    if held_out < everyone:
        note(
            listener, "evaluation",
            f"validation and test on {held_out:,} sampled users of {everyone:,}; the others "
            "train on every watch",
        )


def _fit(
    config: CandidateConfig,
    split: Split,
    train_config: TrainConfig,
    *,
    launch: Launch | None,
    progress: bool,
    listener: Listener | None,
) -> tuple[TrainingCurves, CandidateModel | None]:
    """A freshly seeded model trained on ``split``; ``None`` on ranks other than 0."""
    if config.model == "blend":
        raise OptionError(
            "model", lambda n: f"{n} = 'blend' is saved, not trained: train 'sequence' (its "
            "blend with the bag model trained beside it is what is saved)"
        )
    torch.manual_seed(train_config.seed)
    model = CandidateModel(config)
    if launch is not None and launch.distributed:
        return fit_candidate_distributed(
            model, split, train_config, launch=launch, progress=progress, listener=listener
        )
    curves = fit_candidate(model, split, train_config, progress=progress, listener=listener)
    return curves, model


def add_fitted_baselines(
    result: RunResult,
    *,
    ks: tuple[int, ...] = (10, 20),
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """``result`` with most-popular and EASE with λ tuned on validation (:func:`tune_ease`).

    Both are fitted in closed form (no training loop), so evaluating a saved model again
    (:mod:`crossent.recsys.reevaluate`) reproduces them. EASE is skipped above
    :data:`~crossent.recsys.models.baselines.EASE_MAX_ITEMS` items.
    """
    split = result.split
    popular = evaluate_retrieval(
        MostPopular().fit(split.train), split, ks=ks, progress=progress, listener=listener
    )
    result = result.adding(retrieval={"most popular": popular})
    if split.n_items > EASE_MAX_ITEMS:
        return result
    ease, grid = tune_ease(split)
    note(listener, "EASE", f"λ = {ease.lam:g} has the best validation NDCG@10 of {list(grid)}")
    return result.adding(
        retrieval={
            f"EASE (λ = {ease.lam:g}, tuned)": evaluate_retrieval(
                ease, split, ks=ks, progress=progress, listener=listener
            )
        },
        info={
            "ease_lambda": ease.lam,
            "ease_validation_ndcg@10": {str(lam): v for lam, v in grid.items()},
        },
    )


def add_bag_baseline(
    result: RunResult,
    *,
    train_config: TrainConfig,
    truth: TruthFn | None = None,
    ks: tuple[int, ...] = (10, 20),
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """``result`` with the bag model (mean of the history) trained beside a sequence model.

    It trains with the full softmax, its own optimiser settings (:data:`BAG_SCHEDULE`) and
    ``train_config``'s epochs, patience and seed. Nothing is added for a bag model.
    """
    if result.candidate.config.model != "sequence":
        return result
    split = result.split
    note(listener, "baseline", "the bag model (mean of the history), its own schedule")
    curves, bag = _fit(
        bag_companion(result.candidate.config), split, bag_schedule(train_config),
        launch=None, progress=progress, listener=listener,
    )
    assert bag is not None  # a single process always returns its model
    return result.replacing(bag=bag).adding(
        curves={"retrieval (bag)": curves},
        retrieval={
            "bag model": evaluate_retrieval(bag, split, ks=ks, progress=progress, listener=listener)
        },
        baseline_cross_entropy={
            "bag model": retrieval_cross_entropy(bag, split, "test", truth=truth)
        },
    )


def bag_schedule(train_config: TrainConfig) -> TrainConfig:
    """The bag model's schedule beside a sequence model: :data:`BAG_SCHEDULE`'s rate, weight
    decay and batch, ``train_config``'s epochs, patience and seed."""
    lr, weight_decay, batch_size = BAG_SCHEDULE
    return dataclasses.replace(
        train_config, lr=lr, weight_decay=weight_decay, batch_size=batch_size
    )


def add_baselines(
    result: RunResult,
    *,
    train_config: TrainConfig,
    truth: TruthFn | None = None,
    ks: tuple[int, ...] = (10, 20),
    progress: bool = True,
    listener: Listener | None = None,
) -> RunResult:
    """``result`` with most-popular, tuned EASE (:func:`add_fitted_baselines`) and, for a
    sequence model, the bag model (:func:`add_bag_baseline`)."""
    result = add_fitted_baselines(result, ks=ks, progress=progress, listener=listener)
    return add_bag_baseline(
        result, train_config=train_config, truth=truth, ks=ks, progress=progress, listener=listener
    )


def train_retrieval(
    watches: Interactions,
    *,
    model: ModelSpec | None = None,
    objective: Objective = "full",
    train_config: TrainConfig | None = None,
    truth: TruthFn | None = None,
    baselines: bool = True,
    ks: tuple[int, ...] = (10, 20),
    progress: bool = True,
    listener: Listener | None = None,
    launch: Launch | None = None,
    eval_users: int = defaults.EVAL_USERS,
) -> RunResult:
    """Leave-last-out split, candidate generation training, evaluation beside baselines.

    ``eval_users > 0`` validates and tests on at most that many users, sampled with the
    training seed, the others training on all their watches (:func:`leave_last_out`; 0: every
    user). With a multi-process ``launch`` (torchrun) every rank trains its shard of the
    catalogue; rank 0 gets the gathered model and evaluates, the other ranks return after
    training with no metrics.
    """
    train_config = train_config or TrainConfig()
    split = _split(watches, eval_users, train_config.seed)
    config = (model or ModelSpec()).candidate(split.n_items, objective)
    note(
        listener, "candidate generation",
        f"{split.n_users:,} users, {split.n_items:,} videos, "
        f"{len(split.train):,} training watches, model = {config.model}, "
        f"objective = {config.objective}",
    )
    _note_evaluated(split, listener)
    curves, candidate = _fit(
        config, split, train_config, launch=launch, progress=progress, listener=listener
    )
    if candidate is None:  # not rank 0: training done; rank 0 evaluates and reports
        return RunResult(watches, split, CandidateModel(config), curves={"retrieval": curves})
    result = RunResult(
        watches=watches, split=split, candidate=candidate, curves={"retrieval": curves},
        info=_split_info(eval_users, train_config.seed),
        cross_entropy=retrieval_cross_entropy(candidate, split, "test", truth=truth),
        retrieval={
            "model": evaluate_retrieval(
                candidate, split, ks=ks, progress=progress, listener=listener
            )
        },
    )
    if not baselines:
        return result
    return add_baselines(
        result, train_config=train_config, truth=truth, ks=ks, progress=progress,
        listener=listener,
    )


def _train_objective(
    config: CandidateConfig,
    split: Split,
    train_config: TrainConfig,
    truth: TruthFn | None,
    *,
    progress: bool,
    listener: Listener | None,
) -> tuple[CandidateModel, TrainingCurves, dict[str, float], dict[str, float], dict[str, float]]:
    """One objective of :func:`compare_objectives`: the model, its curves, its test metrics,
    its row of the objectives table and its test cross-entropy."""
    note(listener, f"objective {config.objective}", f"model = {config.model}")
    baseline_rss = status_bytes("VmRSS") or 0
    can_measure = reset_peak_rss()
    start = time.perf_counter()
    curves, model = _fit(
        config, split, train_config, launch=None, progress=progress, listener=listener
    )
    seconds = time.perf_counter() - start
    peak = max(0, (status_bytes("VmHWM") or 0) - baseline_rss) if can_measure else 0
    assert model is not None  # a single process always returns its model
    metrics = evaluate_retrieval(model, split, ks=(10, 20), progress=progress, listener=listener)
    cross_entropy = retrieval_cross_entropy(model, split, "test", truth=truth)
    row = {
        **metrics,
        "test_bits": cross_entropy["bits"],
        "train_seconds": seconds,
        "peak_bytes": float(peak),
        "epochs": float(len(curves.train_bits)),
    }
    return model, curves, metrics, row, cross_entropy


def compare_objectives(
    watches: Interactions,
    objectives: Sequence[Objective],
    *,
    model: ModelSpec | None = None,
    train_config: TrainConfig | None = None,
    truth: TruthFn | None = None,
    progress: bool = True,
    listener: Listener | None = None,
    eval_users: int = defaults.EVAL_USERS,
) -> RunResult:
    """Train the same model (same seed, data and schedule) under each objective.

    ``result.objectives[name]`` holds the test HR@10, NDCG@10, HR@20, MRR, ``test_bits`` (the
    next-watch cross-entropy of the model's softmax over unwatched items), ``train_seconds``
    and ``peak_bytes`` (peak resident memory during training above the resident memory
    before it; 0 where the platform cannot reset the peak). ``result.candidate`` is the model
    of the first objective; ``result.retrieval`` has every objective and the baselines.
    ``eval_users``: as :func:`train_retrieval`.
    """
    if not objectives:
        raise CrossentError("objectives is empty; give at least one, e.g. ('full',)")
    train_config = train_config or TrainConfig()
    split = _split(watches, eval_users, train_config.seed)
    _note_evaluated(split, listener)
    spec = model or ModelSpec()
    result: RunResult | None = None
    for objective in objectives:
        trained, curves, metrics, row, cross_entropy = _train_objective(
            spec.candidate(split.n_items, objective), split, train_config, truth,
            progress=progress, listener=listener,
        )
        if result is None:
            result = RunResult(
                watches, split, trained, cross_entropy=cross_entropy,
                info=_split_info(eval_users, train_config.seed),
            )
        result = result.adding(
            curves={f"retrieval ({objective})": curves},
            retrieval={f"model ({objective})": metrics},
            objectives={objective: row},
        )
    assert result is not None
    return add_baselines(
        result, train_config=train_config, truth=truth, progress=progress, listener=listener
    )
