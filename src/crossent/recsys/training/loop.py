"""The training loop of both stages (progress bar, validation each epoch, plateau early stop)
and candidate-generation training.

Candidate examples predict every training watch from the watches strictly before it (never
the watch itself or anything later; see :meth:`CandidateModel.examples`). Validation is the
NDCG@10 and the masked full-catalogue cross-entropy of each user's validation watch given the
training watches; early stopping follows NDCG@10 and keeps the best epoch's weights.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch

from crossent._validation.choices import LrSchedule, check_choice
from crossent._validation.numbers import check_bool, check_int, check_number
from crossent.recsys import defaults
from crossent.recsys.data.interactions import Interactions, Split
from crossent.recsys.evaluation.next_watch import retrieval_cross_entropy
from crossent.recsys.evaluation.protocol import evaluate_retrieval
from crossent.recsys.events import EpochEnded, Listener, Tracker, epoch_ended, tracker
from crossent.recsys.models.networks import CandidateModel
from crossent.recsys.models.objectives import IGNORE
from crossent.recsys.models.sequence import bucketed
from crossent.recsys.training.resume import TrainingState

LN2 = math.log(2.0)

#: What early stopping watches: validation bits (lower is better) or NDCG@10 (higher).
Criterion = Literal["bits", "ndcg"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by both stages.

    The defaults are candidate generation's (:mod:`crossent.recsys.defaults`, as
    ``crossent train``'s); the ranking stage passes its own (:data:`RANKING_TRAIN`).

    Attributes:
        epochs: the most epochs to run.
        batch_size: examples per step (real targets for the candidate models: :func:`per_step`).
        lr: Adam learning rate (the peak, under a schedule).
        lr_schedule: "constant", or "cosine": step ``s`` of ``S = epochs x steps per epoch``
            uses ``lr (1 + cos(pi s / S)) / 2``. The rate is a function of the step number
            alone, so a resumed run continues on the same curve.
        weight_decay: decoupled weight decay (AdamW); 0 = plain Adam.
        bucket: batch sequence windows of alike length together (:func:`bucketed`), so a
            batch of short histories is not padded to the longest; off, batches are drawn
            uniformly at random.
        patience: stop after this many epochs without a validation improvement.
        min_delta_bits: an improvement smaller than this (bits) does not count.
        min_gain_ndcg: a validation NDCG@10 must beat the best by this fraction of it to count
            as an improvement (so that a gain of 0.0001 on 0.04, far inside the noise, does not
            restart the patience); the best weights are those of the last counted epoch.
        max_examples: use at most this many (random) training examples per epoch.
        seed: shuffling and sampling seed.
        resume: where the loops save their state after each epoch and resume from.
    """

    epochs: int = defaults.EPOCHS
    batch_size: int = defaults.BATCH_TARGETS
    lr: float = defaults.LR
    lr_schedule: LrSchedule = defaults.LR_SCHEDULE
    weight_decay: float = 0.0
    bucket: bool = True
    patience: int = defaults.PATIENCE
    min_delta_bits: float = 1e-3
    min_gain_ndcg: float = defaults.MIN_GAIN_NDCG
    max_examples: int | None = None
    seed: int = 0
    #: save every epoch's state there, and continue from it (see crossent.recsys.training.resume)
    resume: TrainingState | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            check_int(getattr(self, name), name, low=1)
        check_number(self.lr, "lr", low=0.0, low_open=True)
        check_choice(self.lr_schedule, "lr_schedule", LrSchedule)
        check_number(self.weight_decay, "weight_decay", low=0.0)
        check_bool(self.bucket, "bucket")
        check_number(self.min_delta_bits, "min_delta_bits", low=0.0)
        check_number(self.min_gain_ndcg, "min_gain_ndcg", low=0.0)
        if self.max_examples is not None:
            check_int(self.max_examples, "max_examples", low=1, none_ok=True)
        check_int(self.seed, "seed", low=0)

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The learning rate of ``step`` (0-based) of ``epoch`` (1-based)."""
        if self.lr_schedule == "constant":
            return self.lr
        done = ((epoch - 1) * steps_per_epoch + step) / max(self.epochs * steps_per_epoch, 1)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


#: The ranking stage's schedule when none is given: small examples, many per step.
RANKING_TRAIN = TrainConfig(epochs=20, batch_size=1024, lr=5e-3, patience=2)


@dataclass
class TrainingCurves:
    """Per-epoch losses (bits per target), validation metrics and throughput."""

    train_bits: list[float] = field(default_factory=list)
    valid_bits: list[float] = field(default_factory=list)
    examples_per_second: list[float] = field(default_factory=list)
    #: validation NDCG@10 per epoch (candidate generation)
    valid_ndcg: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    #: wall-clock seconds of the whole loop, validation included
    seconds: float = 0.0


def item_log_prob(train: Interactions) -> torch.Tensor:
    """``(n_items,)`` log of each item's share of the training watches (the unigram Q)."""
    counts = np.bincount(train.item, minlength=train.n_items).astype(np.float64)
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(counts / counts.sum())).float()


#: One training step on the example indices it is given: (mean loss in nats, its weight).
Step = Callable[[torch.Tensor], tuple[torch.Tensor, int]]
#: Validation metrics after an epoch: "bits" always, "ndcg" when it is the stopping criterion.
Validate = Callable[[], dict[str, float]]


def _train_one_epoch(
    step: Step,
    order: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    epoch: int,
    track: Tracker,
) -> tuple[float, float]:
    """Steps over ``order`` in batches; returns (mean training bits, examples per second)."""
    batch_size = config.batch_size
    steps = math.ceil(len(order) / batch_size)
    total_nats, seen, start = 0.0, 0, time.perf_counter()
    for number, first in enumerate(range(0, len(order), batch_size)):
        rows = order[first : first + batch_size]
        loss, weight = step(rows)  # mean nats over the batch's ``weight`` targets
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(epoch, number, steps)
        optimizer.step()
        total_nats += loss.item() * weight
        seen += weight
        rate = (first + len(rows)) / max(time.perf_counter() - start, 1e-9)
        track.advance(1, **{"loss (bits)": total_nats / max(seen, 1) / LN2, "ex/s": rate})
    return total_nats / max(seen, 1) / LN2, len(order) / max(time.perf_counter() - start, 1e-9)


def run_epochs(
    step: Step,
    n_examples: int,
    validate: Validate | None,
    parameters: torch.nn.Module,
    config: TrainConfig,
    *,
    label: str,
    criterion: Criterion = "bits",
    progress: bool,
    listener: Listener | None,
    generators: tuple[torch.Generator, ...] = (),
    lengths: torch.Tensor | None = None,
) -> TrainingCurves:
    """The epoch loop of both stages: shuffled batches, a bar, validation, early stopping.

    After each epoch ``validate()`` gives the validation metrics (``validate=None``: no
    validation, every epoch runs and the last one's weights are kept); the epoch is an improvement
    when ``criterion`` ("bits": lower by more than ``min_delta_bits``; "ndcg": higher by more
    than the fraction ``min_gain_ndcg`` of the best) beats
    the best so far. Training stops after ``patience`` epochs without one, and the best
    epoch's weights are restored. With ``config.resume`` the loop's state (weights,
    optimizer, early stopping, the data-order generator and ``generators``, the step's own
    random sources) is saved after every epoch and restored first. With ``lengths`` (the
    cost of each example) batches group examples of alike length (:func:`bucketed`).
    """
    curves, stopping = TrainingCurves(), _Stopping()
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(  # fused: one kernel, not ~10 small ops per parameter
        parameters.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )
    first_epoch, per_epoch = 1, min(n_examples, config.max_examples or n_examples)
    generators = (generator, *generators)
    loop = None if config.resume is None else config.resume.loop(label)
    saved = None if loop is None else loop.restore(parameters, optimizer, generators)
    if saved is not None:
        curves, first_epoch = TrainingCurves(**saved.history), saved.next_epoch
        stopping = _Stopping(saved.best, saved.best_state, saved.bad_epochs)
    started = time.perf_counter() - curves.seconds  # a resumed loop counts its saved time
    for epoch in range(first_epoch, config.epochs + 1):
        parameters.train()
        order = torch.randperm(n_examples, generator=generator)[:per_epoch]
        if lengths is not None and config.bucket:
            order = bucketed(order, lengths, config.batch_size, generator)
        steps = math.ceil(len(order) / config.batch_size)
        with tracker(listener if progress else None, f"{label} epoch {epoch}", steps) as track:
            train_bits, rate = _train_one_epoch(step, order, optimizer, config, epoch, track)
        parameters.eval()
        with torch.no_grad():
            metrics = {"bits": math.nan} if validate is None else validate()
        event = EpochEnded(label, epoch, train_bits, metrics["bits"], metrics.get("ndcg"), rate)
        _record(curves, event)
        epoch_ended(listener, event)
        score = _score(metrics, validate, criterion, config, stopping.best)
        stopping.update(score, epoch, curves, parameters)
        stop = stopping.bad_epochs >= config.patience
        curves.stopped_early = stop and epoch < config.epochs
        curves.seconds = time.perf_counter() - started
        if loop is not None:
            loop.save(
                epoch, asdict(curves), stopping.best, stopping.bad_epochs, stopping.best_state,
                parameters, optimizer, generators, finished=stop or epoch == config.epochs,
            )
        if stop:
            break
    curves.seconds = time.perf_counter() - started
    if stopping.best_state is not None:
        parameters.load_state_dict(stopping.best_state)
    parameters.eval()
    return curves


@dataclass
class _Stopping:
    """Early stopping's state: the best score so far, its weights, the epochs since."""

    best: float = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0

    def update(
        self, score: tuple[float, float], epoch: int, curves: TrainingCurves,
        parameters: torch.nn.Module,
    ) -> None:
        """An epoch scored ``(value, margin)``: a new best when ``value > best + margin``, or
        always when ``value`` is infinite (no validation: the last epoch is kept)."""
        value, margin = score
        if value == math.inf or value > self.best + margin:
            self.best, self.bad_epochs, curves.best_epoch = value, 0, epoch
            self.best_state = {k: v.detach().clone() for k, v in parameters.state_dict().items()}
        else:
            self.bad_epochs += 1


def _score(
    metrics: dict[str, float], validate: Validate | None, criterion: Criterion,
    config: TrainConfig, best: float,
) -> tuple[float, float]:
    """The epoch's criterion as (a score to maximise, the margin above ``best`` a better one
    must clear); without validation every epoch is the best."""
    if validate is None:
        return math.inf, 0.0
    if criterion == "ndcg":
        return metrics["ndcg"], config.min_gain_ndcg * max(best, 0.0)
    return -metrics["bits"], config.min_delta_bits


def _record(curves: TrainingCurves, event: EpochEnded) -> None:
    curves.train_bits.append(event.train_bits)
    curves.examples_per_second.append(event.examples_per_second)
    curves.valid_bits.append(event.valid_bits)
    if event.valid_ndcg is not None:
        curves.valid_ndcg.append(event.valid_ndcg)


def candidate_validation(
    model: CandidateModel, split: Split, users: np.ndarray | None = None
) -> dict[str, float]:
    """Validation cross-entropy (bits) and NDCG@10 of ``model`` (full catalogue, seen excluded)."""
    bits = retrieval_cross_entropy(model, split, "valid", users=users)["bits"]
    ranking = evaluate_retrieval(model, split, "valid", ks=(10,), users=users, progress=False)
    return {"bits": bits, "ndcg": ranking["NDCG@10"]}


def per_step(config: TrainConfig, targets: torch.Tensor) -> TrainConfig:
    """``config`` with ``batch_size`` in examples: targets per step / real targets per example.

    ``batch_size`` counts real (non-padding) targets, on average over the epoch, so it means
    the same on long and short histories: a window of the sequence model holds as many
    targets as its user has watches in it, not its width ``L``, and a step takes
    ``batch_size`` / (the mean real targets per window) windows (at least 1). A bag example
    is one target.

    Example:
        >>> full = torch.tensor([[3, 4], [5, 6]])  # two windows of two targets
        >>> short = torch.tensor([[IGNORE, 4], [IGNORE, 6]])  # one target each
        >>> per_step(TrainConfig(batch_size=8), full).batch_size
        4
        >>> per_step(TrainConfig(batch_size=8), short).batch_size
        8
    """
    real = int((targets != IGNORE).sum()) if len(targets) else 0
    windows = round(config.batch_size * len(targets) / real) if real else config.batch_size
    return dataclasses.replace(config, batch_size=max(1, windows))


def _train_candidate(
    model: CandidateModel,
    train: Interactions,
    config: TrainConfig,
    validate: Validate | None,
    *,
    label: str,
    progress: bool,
    listener: Listener | None,
) -> TrainingCurves:
    """:func:`run_epochs` over every training example of ``train`` (its targets' mean loss per
    step; the negative sampler's generator saved with the loop; alike lengths batched)."""
    inputs, targets = model.examples(train)
    log_q = item_log_prob(train)
    sampler = torch.Generator().manual_seed(config.seed + 1)

    def step(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        batch_targets = targets[rows]
        per_target = model.loss(
            inputs[rows], batch_targets, item_log_prob=log_q, generator=sampler
        )
        count = int((batch_targets != IGNORE).sum())
        return per_target.sum() / max(count, 1), count

    return run_epochs(
        step, len(targets), validate, model, per_step(config, targets), label=label,
        criterion="ndcg", progress=progress, listener=listener, generators=(sampler,),
        lengths=model.example_lengths(inputs),
    )


def fit_candidate(
    model: CandidateModel,
    split: Split,
    config: TrainConfig | None = None,
    *,
    valid_users: np.ndarray | None = None,
    progress: bool = True,
    listener: Listener | None = None,
) -> TrainingCurves:
    """Train the candidate generator on ``split.train``; stop early on validation NDCG@10.

    Each step's loss is the mean over the batch's targets (every position of each sequence
    for the sequence model; padding ignored). ``config.batch_size`` counts real targets: a
    step of the sequence model takes about that many, in whole windows (:func:`per_step`).

    Args:
        valid_users: validate on these users only (default all).
    """
    return _train_candidate(
        model, split.train, config or TrainConfig(),
        lambda: candidate_validation(model, split, valid_users),
        label="retrieval", progress=progress, listener=listener,
    )


def refit_candidate(
    model: CandidateModel,
    watches: Interactions,
    config: TrainConfig,
    *,
    label: str = "refit",
    progress: bool = True,
    listener: Listener | None = None,
) -> TrainingCurves:
    """Train ``model`` on every watch of ``watches`` for exactly ``config.epochs`` epochs.

    The production refit: once early stopping on a held-out watch per user has chosen the
    number of epochs, the same schedule trained on all watches (the held-out ones included)
    gives the model that serves, which has seen each user's most recent watches. There is
    nothing left to validate on, so no epoch is chosen: the last one's weights are kept.

    Example:
        >>> from crossent.recsys.data.interactions import Interactions
        >>> from crossent.recsys.models.networks import CandidateConfig, CandidateModel
        >>> watches = Interactions.from_arrays([0, 0, 0, 1, 1, 1], [0, 1, 2, 2, 1, 0])
        >>> model = CandidateModel(CandidateConfig(n_items=3, dim=8, history=4))
        >>> curves = refit_candidate(model, watches, TrainConfig(epochs=2), progress=False)
        >>> len(curves.train_bits), curves.best_epoch
        (2, 2)
    """
    return _train_candidate(
        model, watches, config, None, label=label, progress=progress, listener=listener
    )
