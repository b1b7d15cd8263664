"""What a loss-lab run is: the losses, models and metrics it knows, and :class:`LabConfig`.

Nothing here needs torch, so the CLI can offer these vocabularies without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from crossent._validation.numbers import check_int, check_number
from crossent.errors import CrossentError
from crossent.lab.data import DATASETS, check_imbalance

LossName = Literal["ce", "mse", "mae", "smooth", "focal", "weighted"]
Model = Literal["mlp", "linear"]

LOSSES: tuple[str, ...] = get_args(LossName)
LOSS_DESCRIPTIONS = {
    "ce": "cross-entropy",
    "mse": "squared error on probabilities (summed over classes)",
    "mae": "absolute error on probabilities (summed over classes)",
    "smooth": "cross-entropy with label smoothing",
    "focal": "focal loss (Lin et al. 2017)",
    "weighted": "cross-entropy with class-balanced weights (Cui et al. 2019)",
}
MODELS: tuple[str, ...] = get_args(Model)
METRICS = (
    "accuracy",
    "macro_recall",
    "minority_recall",
    "log_loss_bits",
    "ece",
    "brier",
    "epochs_to_converge",
)


@dataclass(frozen=True)
class LabConfig:
    """Everything that defines a lab run; two runs with equal configs give equal results."""

    dataset: str = "digits"
    data_path: str | None = None  # a CSV; replaces ``dataset`` when given
    target: str | None = None  # the CSV's label column
    imbalance: float | None = None  # keep this fraction of each minority class
    losses: tuple[str, ...] = LOSSES
    seeds: int = 5
    epochs: int = 100
    model: str = "mlp"
    hidden: int = 64
    learning_rate: float = 1e-2
    batch_size: int = 128
    patience: int = 10
    label_smoothing: float = 0.1
    focal_gamma: float = 2.0
    class_balance_beta: float = 0.999
    bins: int = 10
    data_seed: int = 0  # draws the synthetic sample and the rows an imbalanced variant keeps

    def __post_init__(self) -> None:
        check_losses(self.losses)
        if self.data_path is None and self.dataset not in DATASETS:
            raise CrossentError(
                f"dataset = {self.dataset!r} is unknown; valid: {', '.join(DATASETS)}"
            )
        if self.data_path is not None and not self.target:
            raise CrossentError(f"data = {self.data_path!r} needs target = <label column>")
        if self.imbalance is not None:
            check_imbalance(self.imbalance)
        if self.model not in MODELS:
            raise CrossentError(f"model = {self.model!r} is unknown; valid: {', '.join(MODELS)}")
        for name in ("seeds", "epochs", "hidden", "batch_size", "patience", "bins"):
            check_int(getattr(self, name), name, low=1)
        for name in ("label_smoothing", "class_balance_beta"):
            check_number(getattr(self, name), name, low=0.0, high=1.0, high_open=True)
        check_number(self.learning_rate, "learning_rate", low=0.0, low_open=True)
        check_number(self.focal_gamma, "focal_gamma", low=0.0)
        check_int(self.data_seed, "data_seed", low=0)


def check_losses(losses: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate loss names; raise naming the unknown one and listing the valid ones."""
    if not losses:
        raise CrossentError(f"losses is empty; valid: {', '.join(LOSSES)}")
    for position, name in enumerate(losses):
        if name not in LOSSES:
            raise CrossentError(
                f"losses[{position}] = {name!r} is unknown; valid: {', '.join(LOSSES)}"
            )
        if name in losses[:position]:
            raise CrossentError(f"losses[{position}] = {name!r} is repeated")
    return tuple(losses)


def parse_losses(text: str) -> tuple[str, ...]:
    """``"ce, mse,focal"`` -> ``("ce", "mse", "focal")``, validated."""
    return check_losses([part.strip() for part in text.split(",") if part.strip()])
