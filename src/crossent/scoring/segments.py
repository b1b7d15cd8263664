"""Metrics per segment (``crossent score --by country``), in fixed memory per segment.

:class:`SegmentKeys` gives each row the id of its segment: the tuple of its ``--by`` values
(text; a missing value is its own segment, shown ``(missing)``). Segments beyond ``cap`` are an
error naming the cap, so a column of row ids cannot eat the memory.

:class:`SegmentSums` keeps, per segment, the same sums as the streaming accumulators of
:mod:`crossent.metrics.streaming` (weighted loss, class weights, calibration bins, and for
binary files an AUC histogram of :data:`SEGMENT_AUC_BINS` bins), added for every segment at
once with ``np.bincount`` over ``segment * width + bin``. Each segment's metrics are computed by
those accumulators' own ``result`` methods, so the definitions are the global ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.io.blocks import RowBatch
from crossent.io.values import int_values
from crossent.metrics.calibration import (
    ReliabilityCurve,
    bin_index,
    bin_sums,
    confidence_and_outcome,
)
from crossent.metrics.probabilistic import InputKind, Prepared, normalized_from, row_log_loss
from crossent.metrics.streaming import Calibration, LogLoss, RocAuc

DEFAULT_MAX_SEGMENTS = 1_000
#: AUC histogram bins per segment: 64 KiB each (the global AUC keeps 65,536 bins).
SEGMENT_AUC_BINS = 4_096
MISSING_KEY = "(missing)"
#: How text readers should parse a --by column: dictionary-encoded while parsing.
DICTIONARY = pa.dictionary(pa.int32(), pa.string())
Key = tuple[str, ...]


class SegmentKeys:
    """Segment ids of rows, from their values in the ``by`` columns."""

    def __init__(self, by: Sequence[str], cap: int = DEFAULT_MAX_SEGMENTS):
        cap = check_int(cap, "--max-segments", low=1)
        self.by = tuple(by)
        self.cap = cap
        self.keys: list[Key] = []
        self.ids: dict[Key, int] = {}

    def _id(self, key: Key, where: str = "", scope: str = "") -> int:
        """The id of ``key``, a new one if unseen; ``where``/``scope`` place it in the error."""
        found = self.ids.get(key)
        if found is None:
            if len(self.keys) >= self.cap:
                raise CrossentError(
                    f"--by {','.join(self.by)}: more than {self.cap:,} segments (the cap)"
                    f"{scope}; the next is {', '.join(key)}{where}; pass --max-segments to "
                    "raise the cap"
                )
            found = self.ids[key] = len(self.keys)
            self.keys.append(key)
        return found

    def of(self, batch: RowBatch) -> NDArray[np.int64]:
        """(n,) segment id of each row of ``batch``."""
        codes = np.zeros(len(batch), dtype=np.int64)
        entries: list[list[str]] = []
        size = 1
        for name in self.by:
            encoded = batch.columns[name]
            if not pa.types.is_dictionary(encoded.type):  # CSV columns come encoded (DICTIONARY)
                if encoded.type != pa.string():
                    encoded = encoded.cast(pa.string())
                encoded = pc.dictionary_encode(encoded)
            words = encoded.dictionary.cast(pa.string()).to_pylist()
            texts = [MISSING_KEY if t is None else t for t in words]
            indices = encoded.indices
            if indices.null_count:
                indices = indices.fill_null(len(texts))
            indices = int_values(indices)
            codes = codes * (len(texts) + 1) + indices
            entries.append([*texts, MISSING_KEY])
            size *= len(texts) + 1
        if size <= 1 << 20:  # a dense table of every combination: no sort
            distinct = np.flatnonzero(np.bincount(codes, minlength=size))
            table = np.zeros(size, dtype=np.int64)
            inverse = codes
        else:
            distinct, inverse = np.unique(codes, return_inverse=True)
            table = np.zeros(distinct.shape[0], dtype=np.int64)
        for position, code in enumerate(distinct.tolist()):
            key = []
            rest = code
            for texts in reversed(entries):
                rest, part = divmod(rest, len(texts))
                key.append(texts[part])
            row = int(np.argmax(codes == code)) if len(self.keys) >= self.cap else 0
            where = f" at {batch.path} {batch.row_word} {batch.lines[row]}" if len(batch) else ""
            slot = code if size <= 1 << 20 else position
            table[slot] = self._id(tuple(reversed(key)), where)
        return table[inverse.reshape(-1)]

    def merge(self, other: SegmentKeys) -> NDArray[np.int64]:
        """Add ``other``'s keys; returns, for each of its ids, the id here."""
        remap = np.empty(len(other.keys), dtype=np.int64)
        for position, key in enumerate(other.keys):
            remap[position] = self._id(key, scope=" in all files together")
        return remap


@dataclass
class SegmentResult:
    """The metrics of one segment. Undefined ones are None (one class only, no positives)."""

    key: Key
    rows: int
    weight: float
    base_rate: float | None
    log_loss_nats: float
    log_loss_bits: float
    normalized_entropy: float | None
    ece: float
    calibration_ratio: float | list[float] | None
    roc_auc: float | None
    roc_auc_max_error: float | None
    curve: ReliabilityCurve

    def to_dict(self, by: Sequence[str]) -> dict[str, Any]:
        out = {key: value for key, value in vars(self).items() if key not in ("curve", "key")}
        out["segment"] = dict(zip(by, self.key, strict=True))
        return out


#: The per-segment arrays of :class:`SegmentSums`, each with the segment on axis 0.
_SUMS = ("rows", "loss", "weight", "class_weight", "class_predicted", "bin_sums", "auc")


def _grow(array: NDArray[np.float64], rows: int) -> NDArray[np.float64]:
    if array.shape[0] >= rows:
        return array
    extra = np.zeros((rows - array.shape[0], *array.shape[1:]))
    return np.concatenate([array, extra])


class SegmentSums:
    """Per-segment sums of loss, class weights, calibration bins and AUC histograms."""

    def __init__(self, n_classes: int, input_kind: InputKind, bins: int, binary: bool):
        self.n_classes = n_classes
        self.input_kind: InputKind = input_kind
        self.bins = bins
        self.auc_bins = SEGMENT_AUC_BINS if binary else 0
        self.binary = binary
        self.rows = np.zeros(0)
        self.loss = np.zeros(0)
        self.weight = np.zeros(0)
        self.class_weight = np.zeros((0, n_classes))
        self.class_predicted = np.zeros((0, n_classes))
        self.bin_sums = np.zeros((0, 3, bins))  # predicted, observed, weight
        self.auc = np.zeros((0, self.auc_bins, 2))  # negatives, positives
        self._auc_binner = RocAuc(input_kind=input_kind, bins=max(self.auc_bins, 2))
        self.edges = np.linspace(0.0, 1.0, bins + 1)

    def _ensure(self, segments: int) -> None:
        for name in _SUMS:
            setattr(self, name, _grow(getattr(self, name), segments))

    def add(self, ids: NDArray[np.int64], segments: int, scores: Prepared, probs: Prepared) -> None:
        """Add a batch: ``scores`` as given (probabilities or logits), ``probs`` as probs.

        Each sum is one ``np.bincount`` over ``segment * width + cell``, so every segment is
        updated at once; the cells are those of the global accumulators (calibration bins by
        :func:`~crossent.metrics.calibration.bin_index`, AUC bins by ``RocAuc``).
        """
        self._ensure(segments)
        weight, target, c = scores.weight, scores.target, self.n_classes
        count = np.bincount(ids, minlength=segments)
        self.rows[:segments] += count
        totals = count if weight is None else np.bincount(ids, weight, segments)
        self.weight[:segments] += totals
        losses = row_log_loss(scores, self.input_kind)
        self.loss[:segments] += np.bincount(
            ids, losses if weight is None else losses * weight, segments
        )
        per_class = np.bincount(ids * c + target, weight, segments * c)
        self.class_weight[:segments] += per_class.reshape(segments, c)
        p = probs.scores
        if p.ndim == 1:  # expected counts of (negative, positive)
            positive = np.bincount(ids, p if weight is None else p * weight, segments)
            self.class_predicted[:segments, 1] += positive
            self.class_predicted[:segments, 0] += totals - positive
        else:
            for k in range(c):
                column = p[:, k] if weight is None else p[:, k] * weight
                self.class_predicted[:segments, k] += np.bincount(ids, column, segments)
        predicted, outcome = confidence_and_outcome(p, target)
        cell = ids * self.bins + bin_index(predicted, self.edges, uniform=True)
        for slot, sums in enumerate(
            bin_sums(cell, predicted, outcome, weight, segments * self.bins)
        ):
            self.bin_sums[:segments, slot] += sums.reshape(segments, self.bins)
        if self.binary:
            cell = (ids * self.auc_bins + self._auc_binner._bin(scores.scores)) * 2 + target
            counts = np.bincount(cell, weight, segments * self.auc_bins * 2)
            self.auc[:segments] += counts.reshape(segments, self.auc_bins, 2)

    def merge(self, other: SegmentSums, remap: NDArray[np.int64], segments: int) -> None:
        """Add ``other``'s sums, its segment ``j`` going to this one's ``remap[j]``."""
        self._ensure(segments)
        other._ensure(remap.shape[0])
        for name in _SUMS:
            getattr(self, name)[remap] += getattr(other, name)[: remap.shape[0]]  # remap: distinct

    def result(self, segment: int, key: Key) -> SegmentResult:
        """The metrics of ``segment`` through the streaming accumulators' own formulas."""
        loss = LogLoss(input_kind=self.input_kind)
        loss.loss_sum, loss.weight_sum = float(self.loss[segment]), float(self.weight[segment])
        loss.class_weight = self.class_weight[segment].copy()
        nats = loss.mean_loss_nats() if loss.weight_sum > 0 else float("nan")
        calibration = Calibration(bins=self.bins)
        calibration.predicted_sum, calibration.observed_sum, calibration.weight = self.bin_sums[
            segment
        ].copy()
        calibration.class_predicted = self.class_predicted[segment].copy()
        calibration.class_observed = self.class_weight[segment].copy()
        calibration.binary = self.binary
        return SegmentResult(
            key=key,
            rows=int(self.rows[segment]),
            weight=loss.weight_sum,
            base_rate=_undefined_as_none(lambda: float(loss.class_weight[1] / loss.weight_sum))
            if self.binary
            else None,
            log_loss_nats=nats,
            log_loss_bits=nats / np.log(2.0),
            normalized_entropy=_undefined_as_none(
                lambda: normalized_from(nats, loss.prior_entropy_nats())
            ),
            ece=_undefined_as_none(calibration.result) or 0.0,
            calibration_ratio=_undefined_as_none(lambda: _listed(calibration.ratio())),
            roc_auc=_undefined_as_none(lambda: self._auc(segment).result()),
            roc_auc_max_error=_undefined_as_none(lambda: self._auc(segment).max_error()),
            curve=calibration.curve() if self.weight[segment] > 0 else _empty_curve(self.bins),
        )

    def _auc(self, segment: int) -> RocAuc:
        if not self.binary:
            raise CrossentError("ROC AUC needs binary scores")
        auc = RocAuc(input_kind=self.input_kind, bins=self.auc_bins)
        auc.negative, auc.positive = self.auc[segment, :, 0].copy(), self.auc[segment, :, 1].copy()
        return auc


def _listed(ratio: Any) -> float | list[float]:
    return ratio if isinstance(ratio, float) else [float(r) for r in ratio]


def _undefined_as_none(compute: Any) -> Any:
    try:
        return compute()
    except (CrossentError, ZeroDivisionError):
        return None


def _empty_curve(bins: int) -> ReliabilityCurve:
    empty = np.zeros(bins)
    return ReliabilityCurve.from_bin_sums(np.linspace(0, 1, bins + 1), empty, empty, empty)
