"""Score prediction files of any size: the library behind ``crossent score``.

:class:`FileScorer` reads files with :mod:`crossent.io` block by block, checks every row, and
feeds the valid rows to the streaming accumulators of :mod:`crossent.metrics.streaming` (and,
with ``by``, to the per-segment sums of :mod:`crossent.scoring.segments`), so memory stays
fixed. A bad row (missing or non-numeric value, probability outside [0, 1], non-finite logit,
unknown label, negative weight, unparseable line; the masks of :mod:`crossent._validation.masks`)
stops scoring with a
:class:`~crossent.errors.DataFileError` naming file, line and column, or, with
``skip_invalid=True``, is skipped and counted; the result lists how many and where the first
few were. Nothing is dropped silently.

Several files are scored one scorer per file (:func:`score_file`), merged left to right in the
files' order (:func:`merge_in_order`). :mod:`crossent.scoring.dask` runs the same units on
workers and merges them in the same order, so both runs add the same floats in the same order
and their numbers are equal bit for bit (float addition is not associative: any other grouping
could move the last digit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crossent import io
from crossent._validation import masks
from crossent.errors import CrossentError, DataFileError
from crossent.metrics.probabilistic import Prepared, probs_from_logits
from crossent.metrics.streaming import BrierScore, Calibration, LogLoss, RocAuc
from crossent.scoring.columns import Columns
from crossent.scoring.labels import LabelMap, shown_value
from crossent.scoring.result import ScoreResult, Skipped, Totals, build_result
from crossent.scoring.segments import DEFAULT_MAX_SEGMENTS, DICTIONARY, SegmentKeys, SegmentSums
from crossent.units import Base

MAX_EXAMPLES = 5
Problem = tuple[NDArray[np.bool_], str | None, Callable[[int], str]]

__all__ = ["Columns", "FileScorer", "ScoreResult", "Skipped", "merge_in_order", "score_file"]


class FileScorer:
    """Accumulate metrics over prediction files, one block at a time.

    Args:
        columns: which columns to read (see :func:`~crossent.scoring.columns.guess_columns`).
        labels: the declared target values, one per class (see
            :class:`~crossent.scoring.labels.LabelMap`).
        positive: binary files: the target value of the positive class.
        by: columns whose values define segments, scored separately too.
        max_segments: the most segments ``by`` may create.
        bins: uniform calibration bins.
        skip_invalid: skip bad rows (counted and reported) instead of stopping at the first.
    """

    def __init__(
        self,
        columns: Columns,
        *,
        labels: Sequence[str] | None = None,
        positive: str | None = None,
        by: Sequence[str] = (),
        max_segments: int = DEFAULT_MAX_SEGMENTS,
        bins: int = 15,
        skip_invalid: bool = False,
        block_bytes: int = io.DEFAULT_BLOCK_BYTES,
    ):
        self.columns = columns
        self.skip_invalid = skip_invalid
        self.block_bytes = block_bytes
        self.labels = LabelMap(
            columns.n_classes, labels=labels, positive=positive, class_names=columns.probs
        )
        input_kind = "logits" if columns.logits else "probs"
        self.input_kind = input_kind
        self.totals = Totals(
            LogLoss(input_kind=input_kind),  # type: ignore[arg-type]
            BrierScore(),
            Calibration(bins=bins),
            RocAuc(input_kind=input_kind) if columns.binary else None,  # type: ignore[arg-type]
        )
        self.by = tuple(by)
        self.segment_keys = SegmentKeys(self.by, max_segments) if self.by else None
        self.segments = (
            SegmentSums(columns.n_classes, input_kind, bins, columns.binary)  # type: ignore[arg-type]
            if self.by
            else None
        )

    @property
    def rows(self) -> int:
        return self.totals.rows

    @property
    def float_columns(self) -> list[str]:
        names = list(self.columns.predictions)
        if self.columns.weight:
            names.append(self.columns.weight)
        if self.labels.numeric:
            names.append(self.columns.target)
        return names

    def add_file(
        self,
        path: str | Path,
        progress: Callable[[int], None] | None = None,
        partition: dict[str, object] | None = None,
    ) -> int:
        """Score every row of ``path``; returns the number of rows scored from it.

        ``progress`` is called with the file offset reached after each block; ``partition``
        holds the Hive partition values of the file (columns usable in ``by``).
        """
        before = self.rows
        for batch in io.read_batches(
            path,
            [*self.columns.all, *(c for c in self.by if c not in self.columns.all)],
            float_columns=self.float_columns,
            types={name: DICTIONARY for name in self.by if name not in self.columns.all},
            block_bytes=self.block_bytes,
            constants=partition,
        ):
            self.add_batch(batch)
            if progress is not None:
                progress(batch.bytes_done)
        return self.rows - before

    def add_batch(self, batch: io.RowBatch) -> None:
        """Check and score one batch of rows."""
        self.totals.blank_lines += batch.blank_lines
        problems: list[Problem] = []
        predictions = [self._prediction(batch, name, problems) for name in self.columns.predictions]
        target = self._target(batch, problems)
        weight = None
        if self.columns.weight:
            name = self.columns.weight
            column = io.float_column(batch.columns[name])
            weight = column.values
            problems += _value_problems(name, column, batch.columns[name])
            bad = (masks.not_finite(weight) | masks.negative(weight)) & column.parsed
            problems.append((bad, name, _describe("weight {:g} is negative or not finite", weight)))
        invalid = np.zeros(len(batch), dtype=bool)
        for mask, _, _ in problems:
            invalid |= mask
        if batch.problems or invalid.any():
            self._report(batch, problems, invalid)
        keep = ~invalid
        if not keep.any():
            return
        segment_ids = None if self.segment_keys is None else self.segment_keys.of(batch)
        scores = predictions[0] if self.columns.binary else np.stack(predictions, 1)
        lines = batch.lines
        if invalid.any():  # copies only when something is left out
            scores, target, lines = scores[keep], target[keep], lines[keep]
            weight = None if weight is None else weight[keep]
            segment_ids = None if segment_ids is None else segment_ids[keep]
        self._accumulate(Prepared(scores, target, weight), lines, batch, segment_ids)

    def _accumulate(
        self,
        prepared: Prepared,
        lines: NDArray[np.int64],
        batch: io.RowBatch,
        segment_ids: NDArray[np.int64] | None,
    ) -> None:
        totals = self.totals
        if self.input_kind == "probs" and not self.columns.binary:
            self._count_unnormalised(prepared.scores, lines, batch)
        totals.loss.add_prepared(prepared)
        probs = (
            prepared
            if self.input_kind == "probs"
            else Prepared(probs_from_logits(prepared.scores), prepared.target, prepared.weight)
        )
        totals.brier.add_prepared(probs)
        totals.calibration.add_prepared(probs)
        if totals.auc is not None:
            totals.auc.add_prepared(prepared)
        if self.segments is not None and self.segment_keys is not None and segment_ids is not None:
            self.segments.add(segment_ids, len(self.segment_keys.keys), prepared, probs)
        totals.rows += int(prepared.target.shape[0])

    def _prediction(
        self, batch: io.RowBatch, name: str, problems: list[Problem]
    ) -> NDArray[np.float64]:
        column = io.float_column(batch.columns[name])
        values = column.values
        problems += _value_problems(name, column, batch.columns[name])
        if self.input_kind == "probs":
            outside = column.parsed & masks.outside_unit_interval(values)
            problems.append(
                (outside, name, _describe("probability {:g} is outside [0, 1]", values))
            )
        else:
            not_finite = column.parsed & masks.not_finite(values)
            problems.append((not_finite, name, _describe("logit {:g} is not finite", values)))
        return values

    def _target(self, batch: io.RowBatch, problems: list[Problem]) -> NDArray[np.int64]:
        name = self.columns.target
        labeled = self.labels.classes(batch.columns[name])
        known = self.labels.describe()
        if self.labels.positive is not None:
            hint = " (pass --labels NEG,POS to declare both)"
        elif self.columns.binary:
            hint = " (pass --labels NEG,POS or --positive VALUE to declare others)"
        else:
            hint = " (pass --labels to declare others)"
        problems.append((labeled.missing, name, lambda i: "missing value"))
        problems.append(
            (
                labeled.unknown,
                name,
                lambda i: (
                    f"label {shown_value(labeled, i)} is not one of the known labels {known}{hint}"
                ),
            )
        )
        return labeled.index

    def _report(
        self, batch: io.RowBatch, problems: list[Problem], invalid: NDArray[np.bool_]
    ) -> None:
        found: list[Skipped] = [
            Skipped(str(batch.path), p.line, p.message, p.column) for p in batch.problems
        ]
        for mask, column, describe in problems:
            rows = np.flatnonzero(mask)
            for i in rows[: MAX_EXAMPLES if self.skip_invalid else 1]:
                found.append(
                    Skipped(str(batch.path), int(batch.lines[i]), describe(int(i)), column)
                )
        found.sort(key=lambda s: s.line)
        if not self.skip_invalid:
            first = found[0]
            if batch.row_word == "row":
                where = f"{batch.where}, " if batch.where else ""
                message = f"{where}row {first.line}: {first.message}"
                raise DataFileError(first.path, None, message, first.column)
            raise DataFileError(first.path, first.line, first.message, first.column)
        self.totals.skipped += int(invalid.sum()) + len(batch.problems)
        examples = self.totals.examples
        seen = {(s.path, s.line) for s in examples}
        for example in found:
            if len(examples) >= MAX_EXAMPLES:
                break
            if (example.path, example.line) not in seen:
                examples.append(example)
                seen.add((example.path, example.line))

    def _count_unnormalised(
        self, probs: NDArray[np.floating[Any]], lines: NDArray[np.int64], batch: io.RowBatch
    ) -> None:
        off = masks.off_simplex(probs, axis=1)
        if off.any():
            self.totals.unnormalised += int(off.sum())
            if self.totals.first_unnormalised is None:
                i = int(np.argmax(off))
                self.totals.first_unnormalised = (
                    f"{batch.path} {batch.row_word} {lines[i]}: probabilities sum to "
                    f"{probs[i].sum():.6g}"
                )

    def merge(self, other: FileScorer) -> FileScorer:
        """Add ``other``'s rows (scored with the same settings) into this scorer; returns self.

        Counts and segment keys merge exactly; each float sum gets one addition, whose
        rounding depends on what was merged before (see :func:`merge_in_order`).
        """
        mine, theirs = self.totals, other.totals
        self.labels.merge(other.labels)
        mine.loss.merge(theirs.loss)
        mine.brier.merge(theirs.brier)
        mine.calibration.merge(theirs.calibration)
        if mine.auc is not None and theirs.auc is not None:
            mine.auc.merge(theirs.auc)
        for name in ("rows", "skipped", "blank_lines", "unnormalised"):
            setattr(mine, name, getattr(mine, name) + getattr(theirs, name))
        mine.first_unnormalised = mine.first_unnormalised or theirs.first_unnormalised
        mine.examples = (mine.examples + theirs.examples)[:MAX_EXAMPLES]
        if self.segment_keys is not None and other.segment_keys is not None:
            remap = self.segment_keys.merge(other.segment_keys)
            if self.segments is not None and other.segments is not None:
                self.segments.merge(other.segments, remap, len(self.segment_keys.keys))
        return self

    def result(self, base: Base = "nats") -> ScoreResult:
        """The metrics of everything scored so far, log loss in ``base``; segments by size."""
        result = build_result(self.totals, base)
        result.labels = self.labels.describe()
        if self.segments is not None and self.segment_keys is not None:
            keys = self.segment_keys.keys
            found = [
                self.segments.result(i, key)
                for i, key in enumerate(keys)
                if i < len(self.segments.rows)
                and self.segments.rows[i] > 0  # else: only skipped rows
            ]
            result.by = self.by
            result.segments = sorted(found, key=lambda s: (-s.rows, s.key))
        return result


def score_file(
    source: io.Source,
    columns: Columns,
    settings: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> FileScorer:
    """One file scored by its own scorer: the unit of work of every multi-file run.

    ``settings`` are :class:`FileScorer`'s keyword arguments; ``progress`` as in
    :meth:`FileScorer.add_file`.
    """
    scorer = FileScorer(columns, **settings)
    scorer.add_file(source.path, progress, partition=source.partition)
    return scorer


def merge_in_order(scorers: Iterable[FileScorer]) -> FileScorer:
    """The scorers merged left to right, ``((s0 + s1) + s2) + ...``, into the first one.

    Consumes an iterator one scorer at a time, so a generator of :func:`score_file` calls
    holds one file's sums besides the total.

    Raises:
        CrossentError: no scorers; scorers that cannot merge (different settings, learned
            labels or too many segments together).
    """
    found = iter(scorers)
    total = next(found, None)
    if total is None:
        raise CrossentError("nothing to score: no files or partitions")
    for scorer in found:
        total.merge(scorer)
    return total


def _value_problems(name: str, column: io.FloatColumn, raw: object) -> list[Problem]:
    return [
        (column.missing, name, lambda i: "missing value"),
        (
            column.not_number,
            name,
            lambda i: f"value {str(raw[i].as_py())!r} is not a number",  # type: ignore[index]
        ),
    ]


def _describe(template: str, values: NDArray[np.float64]) -> Callable[[int], str]:
    """A message maker for row ``i``: ``template`` formatted with ``values[i]``."""
    return lambda i: template.format(values[i])
