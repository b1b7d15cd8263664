"""Training the ranking stage: its loss, the loop, and post-hoc calibration (Platt scaling)."""

from __future__ import annotations

import math

import numpy as np
import torch

from crossent.errors import CrossentError
from crossent.losses import binary_cross_entropy, focal_loss
from crossent.recsys.events import Listener
from crossent.recsys.models.ranker import RankingModel
from crossent.recsys.models.ranking_inputs import RankingInputs
from crossent.recsys.training.loop import RANKING_TRAIN, TrainConfig, TrainingCurves, run_epochs


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
    listener: Listener | None = None,
) -> TrainingCurves:
    """Train the ranking model; validation (early stopping) is the training objective in bits.

    That is the log loss of P(watch) for "bce", but the focal or watch-time-weighted loss for
    those: a watch-time model's odds estimate expected watch time, not P(watch), so judging it
    by the log loss of P(watch) would stop it after its first epoch. Calibration is reset to
    the identity; fit it afterwards with :func:`calibrate_ranking`.
    """
    config = config or RANKING_TRAIN
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

    def step(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        return ranking_loss(model, train, rows), len(rows)

    def validate() -> dict[str, float]:
        return {"bits": float(ranking_loss(model, valid, valid_rows)) / math.log(2.0)}

    return run_epochs(
        step,
        len(train.label),
        validate,
        model,
        config,
        label="ranking",
        progress=progress,
        listener=listener,
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
