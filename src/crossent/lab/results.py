"""What a loss-lab run produces, and how its test predictions are scored.

Log loss, ECE and Brier come from :mod:`crossent.metrics`; accuracy and recalls are counts.
The table shows, per loss and metric, the mean and sample standard deviation (ddof = 1) over
seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from crossent.lab.config import METRICS, LabConfig
from crossent.lab.data import LabData
from crossent.metrics import brier_score, expected_calibration_error, log_loss


@dataclass
class LossRun:
    """One loss trained with one seed: its curves, test predictions and metrics."""

    loss: str
    seed: int
    probs: np.ndarray  # (N_test, C) float64 predicted probabilities
    labels: np.ndarray  # (N_test,) true classes
    train_loss: list[float]  # per epoch, the training loss on the training split
    val_loss: list[float]  # per epoch, the training loss on the validation split
    val_log_loss_bits: list[float]  # per epoch, cross-entropy in bits on the validation split
    epochs_to_converge: int
    metrics: dict[str, float] = field(default_factory=dict)
    per_class_recall: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class LabResult:
    """All runs of a lab, plus the data set's description; :meth:`summary` is the table."""

    config: LabConfig
    data: LabData
    runs: list[LossRun]
    seconds: float

    def runs_of(self, loss: str) -> list[LossRun]:
        return [run for run in self.runs if run.loss == loss]

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """``{loss: {metric: (mean, std)}}``, std with ddof = 1 (0 for a single seed)."""
        table: dict[str, dict[str, tuple[float, float]]] = {}
        for loss in self.config.losses:
            runs = self.runs_of(loss)
            table[loss] = {}
            for metric in METRICS:
                values = np.array([run.metrics[metric] for run in runs], dtype=np.float64)
                std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                table[loss][metric] = (float(values.mean()), std)
        return table

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: config, data set, the summary table and every run's metrics."""
        data = self.data
        return {
            "config": asdict(self.config),
            "data": {
                "name": data.name,
                "rows": len(data.labels),
                "features": data.features.shape[1],
                "classes": list(data.class_names),
                "class_counts": [int(n) for n in data.class_counts],
                "minority_classes": [data.class_names[c] for c in data.minority_classes],
                "bayes_error": data.bayes_error,
                "bayes_log_loss_bits": data.bayes_log_loss_bits,
            },
            "summary": {
                loss: {m: {"mean": mean, "std": std} for m, (mean, std) in row.items()}
                for loss, row in self.summary().items()
            },
            "runs": [
                {
                    "loss": run.loss,
                    "seed": run.seed,
                    **run.metrics,
                    "per_class_recall": [float(r) for r in run.per_class_recall],
                }
                for run in self.runs
            ],
            "seconds": self.seconds,
        }


def evaluate_predictions(
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    minority_classes: tuple[int, ...],
    bins: int = 10,
) -> tuple[dict[str, float], np.ndarray]:
    """The lab's test metrics for one run, and the per-class recall (NaN for absent classes).

    Log loss, ECE and Brier come from :mod:`crossent.metrics`; accuracy and recalls are counts.

    Args:
        labels: (N,) true classes in [0, C).
        probs: (N, C) predicted probabilities.
        minority_classes: the classes whose mean recall is ``minority_recall``.
        bins: equal-width confidence bins for the ECE (top-label, Guo et al. 2017).
    """
    n_classes = probs.shape[1]
    predicted = probs.argmax(axis=1)
    per_class = np.full(n_classes, np.nan)
    for c in range(n_classes):
        mask = labels == c
        if mask.any():
            per_class[c] = float(np.mean(predicted[mask] == c))
    minority = per_class[list(minority_classes)]
    classes = np.arange(n_classes)
    metrics = {
        "accuracy": float(np.mean(predicted == labels)),
        "macro_recall": float(np.nanmean(per_class)),
        "minority_recall": float(np.nanmean(minority)) if np.isfinite(minority).any() else 0.0,
        "log_loss_bits": float(log_loss(probs, labels, labels=classes, base="bits")),
        "ece": float(expected_calibration_error(probs, labels, bins=bins, labels=classes)),
        "brier": float(brier_score(probs, labels, labels=classes)),
    }
    return metrics, per_class
