"""The tour's fixed batch and its loss under each option of the losses (`crossent tour`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from crossent.cli._console import make_console

CLASSES = ("cat", "dog", "fox", "owl", "elk")

# one fixed batch: 4 examples, 5 classes (rows: examples; columns: classes)
LOGITS = torch.tensor(
    [
        [2.0, 1.0, 0.1, -1.0, 0.5],
        [0.2, 2.5, 0.3, 0.0, -0.5],
        [1.0, 0.9, 1.1, 0.0, 0.2],
        [-1.0, 0.0, 0.5, 3.0, 0.1],
    ],
    dtype=torch.float64,
)
TARGET = torch.tensor([0, 1, 2, 3])
CLASS_WEIGHT = torch.tensor([1.0, 1.0, 3.0, 1.0, 1.0], dtype=torch.float64)
SOFT_TARGET = torch.tensor(
    [
        [0.7, 0.2, 0.1, 0.0, 0.0],
        [0.1, 0.8, 0.1, 0.0, 0.0],
        [0.3, 0.3, 0.4, 0.0, 0.0],
        [0.0, 0.0, 0.1, 0.8, 0.1],
    ],
    dtype=torch.float64,
)


@dataclass(frozen=True)
class TourRow:
    """One line of the tour: the option, its loss in nats, and what it means."""

    option: str
    nats: float
    meaning: str

    @property
    def bits(self) -> float:
        return self.nats / math.log(2.0)


def tour_rows() -> list[TourRow]:
    """The loss of the fixed batch under each option (mean reduction, in nats)."""
    import crossent

    ignored = TARGET.clone()
    ignored[2] = -100
    one_hot = torch.nn.functional.one_hot(TARGET, len(CLASSES)).double()
    soft_entropy = float(-(SOFT_TARGET * torch.log(SOFT_TARGET.clamp_min(1e-300))).sum(1).mean())

    def ce(target: torch.Tensor = TARGET, **options: object) -> float:
        return float(crossent.cross_entropy(LOGITS, target, **options))  # type: ignore[call-overload]

    return [
        TourRow("uniform guess", math.log(len(CLASSES)),
                "the baseline: predicting 1/C for every class costs ln C"),
        TourRow("cross_entropy", ce(),
                "-log q(true class), averaged over the batch"),
        TourRow("label_smoothing=0.1", ce(label_smoothing=0.1),
                "target keeps 0.9 + 0.1/C; every class gets 0.1/C (PyTorch's convention)"),
        TourRow("  smoothing=off_target", ce(label_smoothing=0.1, smoothing="off_target"),
                "target keeps 0.9; each wrong class gets 0.1/(C-1)"),
        TourRow("weight (fox x3)", ce(weight=CLASS_WEIGHT),
                "fox's term counts 3 times; the mean divides by the sum of the weights used"),
        TourRow("ignore_index (row 2)", ce(ignored),
                "the ignored example is left out of the sum and of the mean"),
        TourRow("soft targets", ce(SOFT_TARGET),
                "targets are distributions: -sum_c t_c log q_c"),
        TourRow("  entropy of the soft targets", soft_entropy,
                "the floor: cross-entropy reaches it only when q equals the target"),
        TourRow("focal_loss gamma=2", float(crossent.focal_loss(LOGITS, TARGET, gamma=2.0)),
                "confident, correct examples are down-weighted by (1 - q)^2"),
        TourRow("binary_cross_entropy", float(crossent.binary_cross_entropy(LOGITS, one_hot)),
                "one sigmoid per class (one-vs-rest), averaged over all N x C entries"),
    ]


def print_tour() -> None:
    """Print the batch and the table of its loss under each option."""
    from rich.table import Table

    console = make_console()
    batch = Table(title="The batch: logits (4 examples x 5 classes) and the true class",
                  title_justify="left")
    batch.add_column("row", justify="right")
    for name in CLASSES:
        batch.add_column(name, justify="right")
    batch.add_column("target")
    for row, (logits, label) in enumerate(zip(LOGITS.tolist(), TARGET.tolist(), strict=True)):
        batch.add_row(str(row), *(f"{value:+.1f}" for value in logits), CLASSES[label])
    console.print(batch)

    table = Table(title="The same batch under each option (reduction='mean')",
                  title_justify="left")
    table.add_column("option", style="bold")
    table.add_column("nats", justify="right")
    table.add_column("bits", justify="right")
    table.add_column("what it means")
    for line in tour_rows():
        table.add_row(line.option, f"{line.nats:.4f}", f"{line.bits:.4f}", line.meaning)
    console.print(table)
    console.print(
        "bits = nats / ln 2; every loss takes base='nats' | 'bits' | any number > 1. "
        "See `help(crossent.cross_entropy)`."
    )
