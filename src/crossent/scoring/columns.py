"""Which columns of a prediction file hold the target, the predictions and the weights.

:func:`guess_columns` fills in what the user did not say when the column names make it
unambiguous (``label``/``target``/``y`` ..., ``prob``/``p``/``score`` ..., ``prob_0..prob_K``,
``logit``, ``weight``), and says what it guessed; anything ambiguous is an error listing the
candidates (the project's one guesser, :func:`crossent.io.columns.pick_column`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from crossent.errors import CrossentError
from crossent.io.columns import pick_column

TARGET_NAMES = (
    "target",
    "label",
    "labels",
    "y",
    "y_true",
    "truth",
    "outcome",
    "click",
    "clicked",
    "is_click",
    "class",
    "actual",
)
PROB_NAMES = (
    "prob",
    "probability",
    "p",
    "y_prob",
    "y_pred",
    "pred",
    "prediction",
    "proba",
    "score",
    "p1",
    "prob_1",
    "predicted",
)
LOGIT_NAMES = ("logit", "logits", "y_logit", "logit_1")
WEIGHT_NAMES = ("weight", "weights", "sample_weight", "w")
_CLASS_COLUMN = re.compile(r"^(?:prob|proba|probability|p)_?(\d+)$", re.IGNORECASE)
_LOGIT_COLUMN = re.compile(r"^(?:logit|logits|z)_?(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Columns:
    """Which columns hold what: the target, the predictions, an optional weight.

    Exactly one of ``prob`` (binary P(y = 1)), ``probs`` (one column per class) or ``logits``
    (one column: a binary logit; several: one per class) is set.
    """

    target: str
    prob: str | None = None
    probs: tuple[str, ...] = ()
    logits: tuple[str, ...] = ()
    weight: str | None = None

    def __post_init__(self) -> None:
        given = sum([self.prob is not None, bool(self.probs), bool(self.logits)])
        if given != 1:
            raise CrossentError("pass exactly one of --prob, --probs or --logits")
        if len(self.probs) == 1:
            raise CrossentError("--probs needs one column per class (at least 2); use --prob")

    @property
    def predictions(self) -> tuple[str, ...]:
        return (self.prob,) if self.prob is not None else self.probs or self.logits

    @property
    def input_kind(self) -> str:
        return "logits" if self.logits else "probs"

    @property
    def binary(self) -> bool:
        return len(self.predictions) == 1

    @property
    def n_classes(self) -> int:
        return 2 if self.binary else len(self.predictions)

    @property
    def all(self) -> tuple[str, ...]:
        weight = (self.weight,) if self.weight else ()
        return (self.target, *self.predictions, *weight)


def guess_columns(
    available: Sequence[str],
    *,
    target: str | None = None,
    prob: str | None = None,
    probs: Sequence[str] = (),
    logits: Sequence[str] = (),
    weight: str | None = None,
) -> tuple[Columns, list[str]]:
    """Fill in the columns not given, when the file's column names make them unambiguous.

    Returns the columns and one message per guess (``guessed --target label``).

    Raises:
        CrossentError: a role is ambiguous or cannot be found; the message lists the columns.
    """
    guesses: list[str] = []
    if prob is None and not probs and not logits:
        class_columns = sorted(
            (int(m.group(1)), c) for c in available if (m := _CLASS_COLUMN.match(c))
        )
        logit_columns = sorted(
            (int(m.group(1)), c) for c in available if (m := _LOGIT_COLUMN.match(c))
        )
        single = pick_column("prob", PROB_NAMES, available)
        single_logit = pick_column("logits", LOGIT_NAMES, available)
        options = [
            ("prob", single),
            ("logits", single_logit),
        ]
        if len(class_columns) >= 3 or (len(class_columns) == 2 and class_columns[0][0] == 0):
            options.append(("probs", ",".join(c for _, c in class_columns)))
        if len(logit_columns) >= 2:
            options.append(("logits", ",".join(c for _, c in logit_columns)))
        found = [(role, value) for role, value in options if value]
        class_names = {c for _, c in class_columns}
        if single is not None and len(class_columns) < 3:  # prob_0, prob_1: binary prob_1
            found = [(role, value) for role, value in found if role != "probs"]
        elif single in class_names:  # prob_1 is one of prob_0..prob_K: multi-class
            found = [(role, value) for role, value in found if role != "prob"]
        if not found and target is not None:
            rest = [c for c in available if c not in (target, weight)]
            if len(rest) == 1:
                found = [("prob", rest[0])]
        if len(found) != 1:
            described = ", ".join(f"--{role} {value}" for role, value in found) or "none"
            raise CrossentError(
                f"cannot guess the prediction columns (candidates: {described}); pass --prob, "
                f"--probs or --logits; the file has columns {', '.join(available)}"
            )
        role, value = found[0]
        guesses.append(f"guessed --{role} {value}")
        if role == "prob":
            prob = value
        elif role == "probs":
            probs = value.split(",")
        else:
            logits = value.split(",")
    used = {prob, *probs, *logits}
    if target is None:
        target = pick_column("target", TARGET_NAMES, [c for c in available if c not in used])
        if target is None:
            rest = [c for c in available if c not in used and c.lower() not in WEIGHT_NAMES]
            if len(rest) != 1:
                raise CrossentError(
                    f"cannot guess the target column; pass --target (the file has columns "
                    f"{', '.join(available)})"
                )
            target = rest[0]
        guesses.append(f"guessed --target {target}")
    if weight is None:
        weight = pick_column(
            "weight", WEIGHT_NAMES, [c for c in available if c not in used | {target}]
        )
        if weight is not None:
            guesses.append(f"guessed --weight {weight}")
    columns = Columns(target, prob, tuple(probs), tuple(logits), weight)
    return columns, guesses


__all__ = ["Columns", "guess_columns"]
