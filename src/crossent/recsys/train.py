"""Training loops for both stages: progress bar, validation each epoch, plateau early stop.

Retrieval examples predict every training watch from the watches strictly before it (never
the watch itself or anything later; see :func:`retrieval_examples`). Validation is the
masked full-catalogue cross-entropy of each user's validation watch given the training
watches. The best epoch's weights are kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from crossent.errors import CrossentError
from crossent.losses import binary_cross_entropy, cross_entropy, focal_loss
from crossent.recsys.data import Interactions, Split, Stage, csr_rows
from crossent.recsys.models import (
    CandidateModel,
    RankingModel,
    windows_from_csr,
)
from crossent.recsys.ranking import RankingInputs
from crossent.recsys.resume import TrainingState

LN2 = math.log(2.0)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by both stages.

    Attributes:
        epochs: the most epochs to run.
        batch_size: examples per step.
        lr: Adam learning rate.
        weight_decay: decoupled weight decay (AdamW); 0 = plain Adam.
        patience: stop after this many epochs without a validation improvement.
        min_delta_bits: an improvement smaller than this (bits) does not count.
        max_examples: use at most this many (random) training examples per epoch.
        seed: shuffling and sampling seed.
        resume: where the loops save their state after each epoch and resume from.
    """

    epochs: int = 20
    batch_size: int = 1024
    lr: float = 5e-3
    weight_decay: float = 0.0
    patience: int = 2
    min_delta_bits: float = 1e-3
    max_examples: int | None = None
    seed: int = 0
    #: save every epoch's state there, and continue from it (see crossent.recsys.resume)
    resume: TrainingState | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CrossentError(f"{name} = {value!r} must be an integer >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise CrossentError(f"lr = {self.lr!r} must be a finite number > 0")


@dataclass
class TrainHistory:
    """Per-epoch losses (bits per example) and throughput."""

    train_bits: list[float] = field(default_factory=list)
    valid_bits: list[float] = field(default_factory=list)
    examples_per_second: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def retrieval_examples(train: Interactions, history: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training watch as ``(window, target)``: the ``history`` watches before it.

    Returns ``windows (n, history)`` int64 padded with ``n_items`` (oldest first, left-
    aligned) and ``targets (n,)``. Row ``i``'s window holds only watches of the same user that
    come strictly earlier in time, so no example sees its own target or the future.
    """
    indptr, items = train.sequences()
    n = len(items)
    user_start = np.repeat(indptr[:-1], np.diff(indptr))  # (n,) first position of its user
    position = np.arange(n)
    first = np.maximum(user_start, position - history)  # (n,)
    columns = first[:, None] + np.arange(history)[None, :]  # (n, H) candidate positions
    valid = columns < position[:, None]
    windows = np.where(valid, items[np.minimum(columns, max(n - 1, 0))], train.n_items)
    return torch.from_numpy(windows.astype(np.int64)), torch.from_numpy(items.astype(np.int64))


def item_log_prob(train: Interactions) -> torch.Tensor:
    """``(n_items,)`` log of each item's share of the training watches (the unigram Q)."""
    counts = np.bincount(train.item, minlength=train.n_items).astype(np.float64)
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(counts / counts.sum())).float()


def _progress(console: Console | None, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[bits]:.3f} bits"),
        TextColumn("{task.fields[rate]:,.0f} ex/s"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=True,
    )


def _epochs(
    step: Callable[[torch.Tensor], torch.Tensor],
    n_examples: int,
    validate: Callable[[], float],
    parameters: torch.nn.Module,
    config: TrainConfig,
    *,
    label: str,
    progress: bool,
    console: Console | None,
    generators: tuple[torch.Generator, ...] = (),
) -> TrainHistory:
    """The shared loop: shuffled batches, a bar, validation (bits) per epoch, early stop.

    ``generators``: the step's own random sources, saved and restored with ``config.resume``.
    """
    history = TrainHistory()
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(
        parameters.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    best_bits, best_state, bad_epochs, first_epoch = math.inf, None, 0, 1
    per_epoch = min(n_examples, config.max_examples or n_examples)
    steps = math.ceil(per_epoch / config.batch_size)
    generators = (generator, *generators)
    loop = None if config.resume is None else config.resume.loop(label)
    saved = None if loop is None else loop.restore(parameters, optimizer, generators)
    if saved is not None:
        history, best_bits, bad_epochs = TrainHistory(**saved.history), saved.best, saved.bad_epochs
        best_state, first_epoch = saved.best_state, saved.next_epoch
    for epoch in range(first_epoch, config.epochs + 1):
        parameters.train()
        order = torch.randperm(n_examples, generator=generator)[:per_epoch]
        total_nats, seen, start = 0.0, 0, time.perf_counter()
        with _progress(console, progress) as bar:
            task = bar.add_task(f"{label} epoch {epoch}", total=steps, bits=0.0, rate=0.0)
            for first in range(0, per_epoch, config.batch_size):
                rows = order[first : first + config.batch_size]
                loss = step(rows)  # mean nats over the batch
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_nats += loss.item() * len(rows)
                seen += len(rows)
                rate = seen / max(time.perf_counter() - start, 1e-9)
                bar.update(task, advance=1, bits=total_nats / seen / LN2, rate=rate)
        history.train_bits.append(total_nats / seen / LN2)
        history.examples_per_second.append(seen / max(time.perf_counter() - start, 1e-9))
        parameters.eval()
        with torch.no_grad():
            valid_bits = validate()
        history.valid_bits.append(valid_bits)
        if console is not None:
            console.print(
                f"{label} epoch {epoch}: train {history.train_bits[-1]:.4f} bits, "
                f"validation {valid_bits:.4f} bits, {history.examples_per_second[-1]:,.0f} ex/s"
            )
        if valid_bits < best_bits - config.min_delta_bits:
            best_bits, bad_epochs, history.best_epoch = valid_bits, 0, epoch
            best_state = {k: v.detach().clone() for k, v in parameters.state_dict().items()}
        else:
            bad_epochs += 1
        stop = bad_epochs >= config.patience
        history.stopped_early = stop and epoch < config.epochs
        if loop is not None:
            loop.save(
                epoch, asdict(history), best_bits, bad_epochs, best_state, parameters, optimizer,
                generators, finished=stop or epoch == config.epochs,
            )
        if stop:
            break
    if best_state is not None:
        parameters.load_state_dict(best_state)
    parameters.eval()
    return history


def fit_candidate(
    model: CandidateModel,
    split: Split,
    config: TrainConfig | None = None,
    *,
    valid_users: np.ndarray | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> TrainHistory:
    """Train the candidate generator on ``split.train``; validate on the validation watches.

    Args:
        valid_users: evaluate validation cross-entropy on these users only (default all).
    """
    config = config or TrainConfig()
    windows, targets = retrieval_examples(split.train, model.config.history)
    log_q = item_log_prob(split.train)
    sampler = torch.Generator().manual_seed(config.seed + 1)

    def step(rows: torch.Tensor) -> torch.Tensor:
        return model.loss(
            windows[rows], targets[rows], item_log_prob=log_q, generator=sampler
        ).mean()

    def validate() -> float:
        return retrieval_cross_entropy(model, split, "valid", users=valid_users)["bits"]

    return _epochs(
        step,
        len(targets),
        validate,
        model,
        config,
        label="retrieval",
        progress=progress,
        console=console,
        generators=(sampler,),
    )


def ranking_loss(model: RankingModel, inputs: RankingInputs, rows: torch.Tensor) -> torch.Tensor:
    """Mean training loss (nats) of ``model`` on ``inputs[rows]`` with the configured loss."""
    logits = model.uncalibrated_logits(inputs.user[rows], inputs.item[rows], inputs.dense[rows])
    label = inputs.label[rows]
    if model.config.loss == "focal":
        return focal_loss(logits, label, gamma=model.config.focal_gamma, mode="binary")
    if model.config.loss == "watch-time":
        if inputs.watch_time is None:
            raise CrossentError('loss = "watch-time" needs watch times; this data has none')
        # weighted logistic regression: positives weighted by watch time, negatives by 1
        weight = torch.where(label > 0, inputs.watch_time[rows], torch.ones_like(label))
        return binary_cross_entropy(logits, label, weight=weight)
    return binary_cross_entropy(logits, label)


def fit_ranking(
    model: RankingModel,
    train: RankingInputs,
    valid: RankingInputs,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    console: Console | None = None,
) -> TrainHistory:
    """Train the ranking model; validation (early stopping) is the training objective in bits.

    That is the log loss of P(watch) for "bce", but the focal or watch-time-weighted loss for
    those: a watch-time model's odds estimate expected watch time, not P(watch), so judging it
    by the log loss of P(watch) would stop it after its first epoch. Calibration is reset to
    the identity; fit it afterwards with :func:`calibrate_ranking`.
    """
    config = config or TrainConfig()
    model.calibration_scale.fill_(1.0)
    model.calibration_shift.fill_(0.0)
    dense = train.dense
    model.dense_mean.copy_(dense.mean(0))
    model.dense_std.copy_(dense.std(0).clamp_min(1e-6))
    # start at the constant predictor (the base watch rate): the deep part's last layer is
    # zero and the wide bias is the base rate's logit, so training can only improve on it
    # (for watch-time: the best constant odds of the weighted loss, sum(T y) / sum(1 - y))
    label = train.label.double()
    positive = label.sum()
    if model.config.loss == "watch-time" and train.watch_time is not None:
        positive = (train.watch_time.double() * label).sum()
    negative = (1 - label).sum()
    log_odds = float(torch.log(positive.clamp_min(1e-6)) - torch.log(negative.clamp_min(1e-6)))
    last = model.deep[-1]
    if isinstance(last, torch.nn.Linear):
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    torch.nn.init.zeros_(model.wide.weight)
    torch.nn.init.constant_(model.wide.bias, log_odds)
    valid_rows = torch.arange(len(valid.label))

    def step(rows: torch.Tensor) -> torch.Tensor:
        return ranking_loss(model, train, rows)

    def validate() -> float:
        return float(ranking_loss(model, valid, valid_rows)) / math.log(2.0)

    return _epochs(
        step,
        len(train.label),
        validate,
        model,
        config,
        label="ranking",
        progress=progress,
        console=console,
    )


def platt_scaling(
    logits: np.ndarray, label: np.ndarray, *, max_iter: int = 100
) -> tuple[float, float]:
    r"""Platt scaling: the ``(scale, shift)`` maximising the likelihood of ``label``.

    ``logits``, ``label``: ``(N,)`` a model's logits and the 0/1 outcomes (float64 inside).

    .. math::
        (a, b) = \arg\min_{a, b} \frac{1}{N} \sum_i
            \operatorname{softplus}(a z_i + b) - y_i (a z_i + b)

    Newton's method from the identity ``(1, 0)``, each step halved until the log loss does not
    rise, so the result never has a higher log loss on ``(logits, label)`` than the uncalibrated
    model. Perfectly separated classes have no finite optimum: the scale then grows until
    ``max_iter`` or until steps stop lowering the loss, and stays finite.

    Raises:
        CrossentError: empty or mismatched inputs, non-finite logits, labels other than 0/1,
            or a single class (the shift would go to infinity).

    References:
        Platt, "Probabilistic outputs for support vector machines", 1999.
    """
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(label, dtype=np.float64).reshape(-1)
    if len(z) != len(y) or len(z) == 0:
        raise CrossentError(
            f"calibration needs as many labels as logits, at least one: got {len(z)} logits "
            f"and {len(y)} labels"
        )
    if not np.isfinite(z).all():
        raise CrossentError("calibration logits must be finite (got NaN or inf)")
    if not np.isin(y, (0.0, 1.0)).all():
        raise CrossentError("calibration labels must be 0 or 1")
    if y.min() == y.max():
        raise CrossentError(
            f"calibration needs both classes in the labels; all {len(y)} are {int(y[0])}"
        )
    design = np.stack([z, np.ones_like(z)], axis=1)  # (N, 2)

    def mean_log_loss(theta: np.ndarray) -> float:
        margin = design @ theta
        # softplus(m) - y m, with logaddexp keeping large |m| finite
        return float(np.mean(np.logaddexp(0.0, margin) - y * margin))

    theta = np.array([1.0, 0.0])
    current = mean_log_loss(theta)
    for _ in range(max_iter):
        prob = 0.5 + 0.5 * np.tanh(0.5 * (design @ theta))  # sigmoid without exp overflow
        gradient = design.T @ (prob - y) / len(y)
        hessian = (design.T * (prob * (1.0 - prob))) @ design / len(y)
        # least squares: all-equal logits make the Hessian singular (the scale is then free)
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        fraction = 1.0
        while fraction > 1e-12:
            trial = theta - fraction * step
            trial_loss = mean_log_loss(trial)
            if trial_loss <= current:
                break
            fraction /= 2
        else:
            break  # no step lowers the loss: at the optimum to float precision
        moved = float(np.abs(trial - theta).max())
        theta, current = trial, trial_loss
        if moved < 1e-12:
            break
    return float(theta[0]), float(theta[1])


def calibrate_ranking(model: RankingModel, valid: RankingInputs) -> tuple[float, float]:
    """Fit ``model``'s calibration by :func:`platt_scaling` on ``valid``; returns (scale, shift).

    Fit it on examples distributed like the ones the model will score (validation, never
    training: the training examples' logits are fitted, and their features may be too).

    Raises:
        CrossentError: as :func:`platt_scaling` (e.g. ``valid`` has a single class), or the
            fitted scale is not positive: on ``valid`` the model orders examples no better
            than chance, and a calibration would flatten or reverse its order. The model's
            calibration is then left unchanged.
    """
    with torch.no_grad():
        logits = model.uncalibrated_logits(valid.user, valid.item, valid.dense)
    scale, shift = platt_scaling(logits.double().numpy(), valid.label.double().numpy())
    if scale <= 0:
        raise CrossentError(
            f"calibration scale {scale:.4g} <= 0: on the {len(valid)} validation examples the "
            "model orders no better than chance; not calibrating it"
        )
    model.calibration_scale.fill_(scale)
    model.calibration_shift.fill_(shift)
    return scale, shift


#: The true next-watch log-probabilities ``(B, n_items)`` of a batch of users, when known.
TruthFn = Callable[[np.ndarray], torch.Tensor]

#: Stands in for -inf on masked logits: exp() of it is 0, yet it is finite for the checks.
_MASKED = -1e30


def retrieval_cross_entropy(
    model: CandidateModel,
    split: Split,
    stage: Stage = "test",
    *,
    users: np.ndarray | None = None,
    truth: TruthFn | None = None,
    cells_per_batch: int = 2**22,
) -> dict[str, float]:
    """Cross-entropy of the ``stage`` watch under the model's softmax over unwatched videos.

    The history items (except the target itself, should it be a re-watch) are removed from
    the softmax, as the retrieval metrics remove them from the ranking. With ``truth`` (the
    true next-watch log-probabilities, e.g. from the simulator) the result also has the
    Bayes limit — the mean entropy of the truth, the lowest expected cross-entropy any model
    can reach — the truth's own cross-entropy on the drawn targets, and the exact expected
    cross-entropy ``H(p, q) = -sum_j p_j log q_j`` of the model (free of sampling noise).

    Returns:
        ``{"nats", "bits", "users"}`` and with ``truth`` also ``"bayes_nats"``,
        ``"truth_nats"``, ``"expected_nats"`` and their ``"_bits"`` versions.
    """
    users = split.users(stage) if users is None else np.asarray(users, dtype=np.int64)
    target = torch.from_numpy(split.target(stage)[users])
    indptr, items = split.history(stage)
    batch = max(1, cells_per_batch // split.n_items)
    sums = {"nats": 0.0, "bayes_nats": 0.0, "truth_nats": 0.0, "expected_nats": 0.0}
    with torch.no_grad():
        for start in range(0, len(users), batch):
            rows = users[start : start + batch]
            row_target = target[start : start + batch]
            hist_indptr, hist_items = csr_rows(indptr, items, rows)
            window = windows_from_csr(
                hist_indptr, hist_items, model.config.history, model.config.n_items
            )
            logits = model.scores(window)  # (B, V)
            seen_rows = torch.from_numpy(np.repeat(np.arange(len(rows)), np.diff(hist_indptr)))
            seen_items = torch.from_numpy(hist_items.astype(np.int64))
            not_target = seen_items != row_target[seen_rows]
            logits[seen_rows[not_target], seen_items[not_target]] = _MASKED
            sums["nats"] += float(cross_entropy(logits, row_target, reduction="sum"))
            if truth is not None:
                true_log = truth(rows)  # (B, V)
                true_prob = true_log.exp()
                model_log = torch.log_softmax(logits.double(), 1)
                support = true_prob > 0
                sums["bayes_nats"] -= float(torch.where(support, true_prob * true_log, 0).sum())
                sums["truth_nats"] -= float(true_log.gather(1, row_target[:, None]).sum())
                sums["expected_nats"] -= float(torch.where(support, true_prob * model_log, 0).sum())
    keys = ("nats", "bayes_nats", "truth_nats", "expected_nats") if truth else ("nats",)
    result = {"users": float(len(users))}
    for key in keys:
        result[key] = sums[key] / max(len(users), 1)
        result[key.replace("nats", "bits")] = result[key] / LN2
    return result


# checkpoints live in their own module; re-exported here, where callers look for them
from crossent.recsys.checkpoint import (  # noqa: E402
    CHECKPOINT_FILE,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)

__all__ = [
    "CHECKPOINT_FILE",
    "Checkpoint",
    "TrainConfig",
    "TrainHistory",
    "calibrate_ranking",
    "fit_candidate",
    "fit_ranking",
    "load_checkpoint",
    "platt_scaling",
    "ranking_loss",
    "retrieval_cross_entropy",
    "retrieval_examples",
    "save_checkpoint",
]
