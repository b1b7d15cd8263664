"""The loss lab's training: one model, one seed, one optimiser, many losses.

For each loss in :data:`~crossent.lab.config.LOSSES` and each seed, the same model (a
one-hidden-layer MLP, or a linear model) starts from the same initial weights
(``torch.manual_seed(seed)``), sees the same mini-batches in the same order and is trained with
the same Adam optimiser; only the loss differs. The seed also draws the stratified train /
validation / test split (60 / 20 / 20), so the spread over seeds covers both initialisation and
sampling.

**Epochs to converge.** Training stops early when the validation value of the training loss has
not improved for ``patience`` epochs (or after ``epochs``); the weights of the best validation
epoch are restored, and that epoch (1-based) is the run's "epochs to converge".

**Metrics** are computed on the test split from the restored model's probabilities by
:func:`crossent.lab.results.evaluate_predictions`: accuracy, macro recall (mean per-class
recall), minority-class recall (mean recall over the smaller half of the classes, see
:mod:`crossent.lab.data`), log loss in bits, expected calibration error (top-label, ``bins``
equal-width bins) and the Brier score (scikit-learn's ``brier_score_loss``: mean (p - y)² for
two classes, the squared error summed over classes for three or more).

Runs are deterministic for a fixed seed: torch runs single-threaded during the lab (the thread
count is restored afterwards) and every random draw comes from the seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from crossent.lab.config import LabConfig
from crossent.lab.data import LabData, load_csv, load_dataset
from crossent.lab.results import LabResult, LossRun, evaluate_predictions
from crossent.losses import class_balanced_weights, cross_entropy, focal_loss


def load_lab_data(config: LabConfig) -> LabData:
    """The data set a config names: a CSV when ``data_path`` is set, else ``dataset``."""
    if config.data_path is not None and config.target is not None:  # both or neither: LabConfig
        return load_csv(
            config.data_path, config.target, imbalance=config.imbalance, data_seed=config.data_seed
        )
    return load_dataset(config.dataset, imbalance=config.imbalance, data_seed=config.data_seed)


def run_lab(
    config: LabConfig,
    *,
    data: LabData | None = None,
    on_run_done: Callable[[LossRun], None] | None = None,
) -> LabResult:
    """Train the model under every loss and seed of ``config``; see the module docstring.

    Args:
        config: what to run.
        data: a data set to use instead of the one ``config`` names (tests, notebooks).
        on_run_done: called after each (loss, seed) run, e.g. to advance a progress bar.
    """
    data = load_lab_data(config) if data is None else data
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # determinism, and faster than threads for a model this small
    runs: list[LossRun] = []
    try:
        for seed in range(config.seeds):
            split = _split(data, seed)
            for loss in config.losses:
                run = _train_one(config, data, split, loss, seed)
                runs.append(run)
                if on_run_done is not None:
                    on_run_done(run)
    finally:
        torch.set_num_threads(threads)
    return LabResult(config, data, runs, time.perf_counter() - started)


@dataclass(frozen=True)
class _Split:
    x_train: torch.Tensor  # (N_train, D) float32, standardised with the training statistics
    y_train: torch.Tensor  # (N_train,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _split(data: LabData, seed: int) -> _Split:
    """Stratified 60 / 20 / 20 split drawn with ``seed``; features standardised on train."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(data.labels))
    rest, test = train_test_split(rows, test_size=0.2, stratify=data.labels, random_state=seed)
    train, val = train_test_split(
        rest, test_size=0.25, stratify=data.labels[rest], random_state=seed
    )
    mean = data.features[train].mean(axis=0)
    scale = data.features[train].std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature stays constant (0) rather than dividing by 0

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        features = (data.features[idx] - mean) / scale
        return (
            torch.as_tensor(features, dtype=torch.float32),
            torch.as_tensor(data.labels[idx], dtype=torch.int64),
        )

    return _Split(*tensors(train), *tensors(val), *tensors(test))


def _model(config: LabConfig, n_features: int, n_classes: int) -> torch.nn.Module:
    if config.model == "linear":
        return torch.nn.Linear(n_features, n_classes)
    return torch.nn.Sequential(
        torch.nn.Linear(n_features, config.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(config.hidden, n_classes),
    )


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _loss_fn(config: LabConfig, loss: str, class_counts: np.ndarray) -> LossFn:
    """The training objective: logits (B, C), targets (B,) -> a scalar mean over the batch.

    Cross-entropy runs the reference (plain torch) implementation: at a (128, 10) batch the
    fused CPU kernel's parallel launch costs more than the arithmetic it saves.
    """
    ref: Literal["reference"] = "reference"
    if loss == "ce":
        return lambda logits, target: cross_entropy(logits, target, implementation=ref)
    if loss == "smooth":
        eps = config.label_smoothing
        return lambda logits, target: cross_entropy(
            logits, target, label_smoothing=eps, implementation=ref
        )
    if loss == "focal":
        gamma = config.focal_gamma
        return lambda logits, target: focal_loss(logits, target, gamma=gamma)
    if loss == "weighted":
        # a class missing from a tiny training split counts as 1 (it gets the largest weight)
        weight = class_balanced_weights(np.maximum(class_counts, 1), beta=config.class_balance_beta)
        return lambda logits, target: cross_entropy(
            logits, target, weight=weight, implementation=ref
        )
    power = 2 if loss == "mse" else 1

    def probability_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # (B, C) probabilities against one-hot targets, summed over classes: for "mse" the
        # Brier score, for "mae" 2 (1 - q_y); both saturate where the softmax does
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, logits.shape[1]).to(probs.dtype)
        return (probs - onehot).abs().pow(power).sum(dim=1).mean()

    return probability_error


def _train_one(config: LabConfig, data: LabData, split: _Split, loss: str, seed: int) -> LossRun:
    torch.manual_seed(seed)  # same initial weights for every loss at this seed
    model = _model(config, data.features.shape[1], data.n_classes)
    # fused Adam: one kernel per step instead of one per tensor
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
    objective = _loss_fn(config, loss, np.bincount(split.y_train.numpy(), minlength=data.n_classes))
    order = torch.Generator().manual_seed(seed)  # same batches, in the same order, for every loss
    n_train = len(split.y_train)
    train_curve: list[float] = []
    val_curve: list[float] = []
    val_bits: list[float] = []
    best_val, best_epoch, best_state = float("inf"), 0, _copy_state(model)
    for epoch in range(1, config.epochs + 1):
        model.train()
        total = 0.0
        for batch in torch.randperm(n_train, generator=order).split(config.batch_size):
            value = objective(model(split.x_train[batch]), split.y_train[batch])
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            total += float(value.detach()) * len(batch)
        train_curve.append(total / n_train)
        model.eval()
        with torch.no_grad():
            logits = model(split.x_val)
            val_curve.append(float(objective(logits, split.y_val)))
            val_bits.append(
                float(cross_entropy(logits, split.y_val, base="bits", implementation="reference"))
            )
        if val_curve[-1] < best_val:
            best_val, best_epoch, best_state = val_curve[-1], epoch, _copy_state(model)
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(split.x_test).double(), dim=1).numpy()
    labels = split.y_test.numpy()
    metrics, per_class = evaluate_predictions(
        labels, probs, minority_classes=data.minority_classes, bins=config.bins
    )
    metrics["epochs_to_converge"] = float(best_epoch)
    return LossRun(
        loss, seed, probs, labels, train_curve, val_curve, val_bits, best_epoch, metrics, per_class
    )


def _copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
