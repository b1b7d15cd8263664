"""Score prediction files of any size: the library behind ``crossent score``.

:class:`FileScorer` reads files with :mod:`crossent.io` block by block, checks every row, and
feeds the valid rows to the streaming accumulators of :mod:`crossent.metrics.streaming`, so
memory stays fixed. A bad row (missing or non-numeric value, probability outside [0, 1],
non-finite logit, label not in the declared set, negative weight, unparseable line) stops
scoring with a :class:`~crossent.errors.DataFileError` naming file, line and column, or, with
``skip_invalid=True``, is skipped and counted; the result lists how many and where the first
few were. Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crossent import io
from crossent.errors import CrossentError, DataFileError
from crossent.metrics.calibration import ReliabilityCurve
from crossent.metrics.file_columns import Columns
from crossent.metrics.probabilistic import Prepared, normalized_from, probs_from_logits
from crossent.metrics.streaming import BrierScore, Calibration, LogLoss, RocAuc
from crossent.units import Base, log_divisor, unit_name

UNNORMALISED_TOLERANCE = 1e-4
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Skipped:
    """A row that was left out, and why."""

    path: str
    line: int
    message: str
    column: str | None = None

    def __str__(self) -> str:
        return str(DataFileError(self.path, self.line, self.message, self.column))


@dataclass
class ScoreResult:
    """Everything ``crossent score`` reports. Undefined metrics are ``None`` with a reason."""

    rows: int
    weight: float
    skipped: int
    skipped_examples: list[Skipped]
    blank_lines: int
    unit: str
    log_loss: float
    log_loss_nats: float
    log_loss_bits: float
    normalized_entropy: float | None
    perplexity: float
    brier: float
    ece: float
    bins: int
    calibration_ratio: float | list[float] | None
    roc_auc: float | None
    roc_auc_max_error: float | None
    prior: list[float]
    prior_entropy: float
    curve: ReliabilityCurve
    unnormalised_rows: int = 0
    first_unnormalised: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the reliability curve as lists)."""
        out = {key: value for key, value in vars(self).items() if key != "curve"}
        out["skipped_examples"] = [str(example) for example in self.skipped_examples]
        out["reliability"] = {
            "edges": self.curve.edges.tolist(),
            "mean_predicted": [None if np.isnan(v) else v for v in self.curve.mean_predicted],
            "observed": [None if np.isnan(v) else v for v in self.curve.observed],
            "weight": self.curve.weight.tolist(),
        }
        return out


class FileScorer:
    """Accumulate metrics over prediction files, one block at a time.

    Args:
        columns: which columns to read (see :func:`guess_columns`).
        labels: the declared target values: ``[negative, positive]`` for binary, one per class
            column otherwise. Default ``0, 1`` (binary) or ``0 .. C-1``.
        bins: uniform calibration bins.
        skip_invalid: skip bad rows (counted and reported) instead of stopping at the first.
    """

    def __init__(
        self,
        columns: Columns,
        *,
        labels: Sequence[str] | None = None,
        bins: int = 15,
        skip_invalid: bool = False,
        block_bytes: int = io.DEFAULT_BLOCK_BYTES,
    ):
        self.columns = columns
        self.skip_invalid = skip_invalid
        self.block_bytes = block_bytes
        n_classes = columns.n_classes
        label_texts = (
            [str(label).strip() for label in labels]
            if labels
            else [str(c) for c in range(n_classes)]
        )
        if len(label_texts) != n_classes:
            raise CrossentError(
                f"--labels has {len(label_texts)} values but there are {n_classes} classes"
            )
        if len(set(label_texts)) != n_classes:
            raise CrossentError(f"--labels {','.join(label_texts)} has repeated values")
        self.label_texts = label_texts
        self.numeric_labels = all(io.is_number(text) for text in label_texts)
        self.label_values = (
            np.array([float(t) for t in label_texts]) if self.numeric_labels else None
        )
        input_kind = "logits" if columns.logits else "probs"
        self.input_kind = input_kind
        self.loss = LogLoss(input_kind=input_kind)  # type: ignore[arg-type]
        self.brier = BrierScore()
        self.calibration = Calibration(bins=bins)
        self.auc = RocAuc(input_kind=input_kind) if columns.binary else None  # type: ignore[arg-type]
        self.rows = 0
        self.skipped = 0
        self.examples: list[Skipped] = []
        self.blank_lines = 0
        self.unnormalised = 0
        self.first_unnormalised: str | None = None

    def add_file(self, path: str | Path, progress: Callable[[int], None] | None = None) -> int:
        """Score every row of ``path``; returns the number of rows scored from it.

        ``progress`` is called with the file offset reached after each block.
        """
        float_columns = list(self.columns.predictions)
        if self.columns.weight:
            float_columns.append(self.columns.weight)
        if self.numeric_labels:
            float_columns.append(self.columns.target)
        before = self.rows
        for batch in io.read_batches(
            path, self.columns.all, float_columns=float_columns, block_bytes=self.block_bytes
        ):
            self._add_batch(batch)
            if progress is not None:
                progress(batch.bytes_done)
        return self.rows - before

    def _add_batch(self, batch: io.RowBatch) -> None:
        n = len(batch)
        self.blank_lines += batch.blank_lines
        problems: list[tuple[NDArray[np.bool_], str | None, Callable[[int], str]]] = []
        predictions = []
        for name in self.columns.predictions:
            column = io.float_column(batch.columns[name])
            values = column.values
            predictions.append(values)
            problems += _value_problems(name, column, batch.columns[name])
            parsed = ~column.missing & ~column.not_number
            if self.input_kind == "probs":
                outside = parsed & ~((values >= 0) & (values <= 1))
                problems.append(
                    (outside, name, _describe("probability {:g} is outside [0, 1]", values))
                )
            else:
                not_finite = parsed & ~np.isfinite(values)
                problems.append((not_finite, name, _describe("logit {:g} is not finite", values)))
        target, target_problems = self._target(batch)
        problems += target_problems
        weight = None
        if self.columns.weight:
            column = io.float_column(batch.columns[self.columns.weight])
            weight = column.values
            problems += _value_problems(
                self.columns.weight, column, batch.columns[self.columns.weight]
            )
            bad = ~(np.isfinite(weight) & (weight >= 0)) & ~column.missing & ~column.not_number
            problems.append(
                (
                    bad,
                    self.columns.weight,
                    _describe("weight {:g} is negative or not finite", weight),
                )
            )
        invalid = np.zeros(n, dtype=bool)
        for mask, _, _ in problems:
            invalid |= mask
        if batch.problems or invalid.any():
            self._report(batch, problems, invalid)
        keep = ~invalid
        if not keep.any():
            return
        scores = predictions[0] if self.columns.binary else np.stack(predictions, 1)
        lines = batch.lines
        if invalid.any():  # copies only when something is left out
            scores, target, lines = scores[keep], target[keep], lines[keep]
            weight = None if weight is None else weight[keep]
        prepared = Prepared(scores, target, weight)
        if self.input_kind == "probs" and not self.columns.binary:
            self._count_unnormalised(scores, lines, batch)
        self.loss.add_prepared(prepared)
        probs = (
            prepared
            if self.input_kind == "probs"
            else Prepared(probs_from_logits(scores), prepared.target, prepared.weight)
        )
        self.brier.add_prepared(probs)
        self.calibration.add_prepared(probs)
        if self.auc is not None:
            self.auc.add_prepared(prepared)
        self.rows += int(keep.sum())

    def _target(
        self, batch: io.RowBatch
    ) -> tuple[NDArray[np.int64], list[tuple[NDArray[np.bool_], str | None, Callable[[int], str]]]]:
        name = self.columns.target
        declared = ", ".join(self.label_texts)
        if self.label_values is not None:
            column = io.float_column(batch.columns[name])
            problems = _value_problems(name, column, batch.columns[name])
            index = np.zeros(len(batch), dtype=np.int64)
            known = np.zeros(len(batch), dtype=bool)
            for class_index, label in enumerate(self.label_values):
                match = column.values == label
                if class_index:
                    index += class_index * match  # arithmetic, not a boolean-mask assignment
                known |= match
            unknown = ~known & ~column.missing & ~column.not_number
            values = column.values
            problems.append(
                (
                    unknown,
                    name,
                    lambda i: (
                        f"label {values[i]:g} is not one of the declared labels {declared} "
                        "(pass --labels to declare others)"
                    ),
                )
            )
            return index, problems
        texts = io.text_values(batch.columns[name])
        missing = np.array([t is None or not str(t).strip() for t in texts], dtype=bool)
        lookup = {label: i for i, label in enumerate(self.label_texts)}
        index = np.array([lookup.get(str(t).strip(), -1) for t in texts], dtype=np.int64)
        unknown = (index < 0) & ~missing
        return np.maximum(index, 0), [
            (missing, name, lambda i: "missing value"),
            (
                unknown,
                name,
                lambda i: f"label {texts[i]!r} is not one of the declared labels {declared}",
            ),
        ]

    def _report(
        self,
        batch: io.RowBatch,
        problems: list[tuple[NDArray[np.bool_], str | None, Callable[[int], str]]],
        invalid: NDArray[np.bool_],
    ) -> None:
        found: list[Skipped] = [
            Skipped(str(batch.path), p.line, p.message, p.column) for p in batch.problems
        ]
        for mask, column, describe in problems:
            rows = np.flatnonzero(mask)
            limit = rows if self.skip_invalid else rows[:1]
            for i in limit[: MAX_EXAMPLES if self.skip_invalid else 1]:
                found.append(
                    Skipped(str(batch.path), int(batch.lines[i]), describe(int(i)), column)
                )
        found.sort(key=lambda s: s.line)
        if not self.skip_invalid:
            first = found[0]
            message = first.message
            if batch.row_word == "row":
                raise DataFileError(first.path, None, f"row {first.line}: {message}", first.column)
            raise DataFileError(first.path, first.line, message, first.column)
        self.skipped += int(invalid.sum()) + len(batch.problems)
        seen = {(s.path, s.line) for s in self.examples}
        for example in found:
            if len(self.examples) >= MAX_EXAMPLES:
                break
            if (example.path, example.line) not in seen:
                self.examples.append(example)
                seen.add((example.path, example.line))

    def _count_unnormalised(
        self, probs: NDArray[np.float64], lines: NDArray[np.int64], batch: io.RowBatch
    ) -> None:
        off = np.abs(probs.sum(axis=1) - 1) > UNNORMALISED_TOLERANCE
        if off.any():
            self.unnormalised += int(off.sum())
            if self.first_unnormalised is None:
                i = int(np.argmax(off))
                self.first_unnormalised = (
                    f"{batch.path} {batch.row_word} {lines[i]}: probabilities sum to "
                    f"{probs[i].sum():.6g}"
                )

    def result(self, base: Base = "nats") -> ScoreResult:
        """The metrics of everything scored so far, log loss in ``base``."""
        if self.rows == 0:
            skipped = f" ({self.skipped} invalid rows skipped)" if self.skipped else ""
            raise CrossentError(f"no valid rows to score{skipped}")
        if self.loss.weight_sum <= 0:
            raise CrossentError("all weights are 0; nothing to score")
        notes: list[str] = []
        nats = self.loss.mean_loss_nats()
        prior = (self.loss.class_weight / self.loss.class_weight.sum()).tolist()  # type: ignore[union-attr]
        prior_h = self.loss.prior_entropy_nats()
        try:
            ne: float | None = normalized_from(nats, prior_h)
        except CrossentError as error:
            ne = None
            notes.append(f"normalized entropy undefined: {error}")
        auc = auc_error = None
        if self.auc is not None:
            try:
                auc, auc_error = self.auc.result(), self.auc.max_error()
            except CrossentError as error:
                notes.append(f"ROC AUC undefined: {error}")
        try:
            ratio = self.calibration.ratio()
            calibration_ratio: float | list[float] | None = (
                ratio if isinstance(ratio, float) else [float(r) for r in ratio]
            )
        except CrossentError as error:
            calibration_ratio = None
            notes.append(f"calibration ratio undefined: {error}")
        curve = self.calibration.curve()
        return ScoreResult(
            rows=self.rows,
            weight=self.loss.weight_sum,
            skipped=self.skipped,
            skipped_examples=list(self.examples),
            blank_lines=self.blank_lines,
            unit=unit_name(base),
            log_loss=nats / log_divisor(base),
            log_loss_nats=nats,
            log_loss_bits=nats / np.log(2.0),
            normalized_entropy=ne,
            perplexity=float(np.exp(nats)),
            brier=self.brier.result(),
            ece=curve.expected_calibration_error,
            bins=self.calibration.bins,
            calibration_ratio=calibration_ratio,
            roc_auc=auc,
            roc_auc_max_error=auc_error,
            prior=prior,
            prior_entropy=prior_h / log_divisor(base),
            curve=curve,
            unnormalised_rows=self.unnormalised,
            first_unnormalised=self.first_unnormalised,
            notes=notes,
        )


def _value_problems(
    name: str, column: io.FloatColumn, raw: Any
) -> list[tuple[NDArray[np.bool_], str | None, Callable[[int], str]]]:
    return [
        (column.missing, name, lambda i: "missing value"),
        (column.not_number, name, lambda i: f"value {str(raw[i].as_py())!r} is not a number"),
    ]


def _describe(template: str, values: NDArray[np.float64]) -> Callable[[int], str]:
    """A message maker for row ``i``: ``template`` formatted with ``values[i]``."""
    return lambda i: template.format(values[i])
