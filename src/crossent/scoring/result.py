"""What ``crossent score`` reports: :class:`ScoreResult`, built from the accumulators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossent.errors import CrossentError, DataFileError
from crossent.metrics.calibration import ReliabilityCurve
from crossent.metrics.probabilistic import normalized_from
from crossent.metrics.streaming import BrierScore, Calibration, LogLoss, RocAuc
from crossent.scoring.segments import SegmentResult
from crossent.units import Base, log_divisor, unit_name


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
    labels: str = ""
    by: tuple[str, ...] = ()
    segments: list[SegmentResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (the reliability curve as lists)."""
        out = {key: value for key, value in vars(self).items() if key not in ("curve", "segments")}
        out["skipped_examples"] = [str(example) for example in self.skipped_examples]
        out["reliability"] = _curve_dict(self.curve)
        if self.by:
            out["segments"] = [segment.to_dict(self.by) for segment in self.segments]
        return out


def _curve_dict(curve: ReliabilityCurve) -> dict[str, list[float | None]]:
    return {
        "edges": curve.edges.tolist(),
        "mean_predicted": [None if np.isnan(v) else v for v in curve.mean_predicted],
        "observed": [None if np.isnan(v) else v for v in curve.observed],
        "weight": curve.weight.tolist(),
    }


@dataclass
class Totals:
    """The global accumulators and counters of a scorer."""

    loss: LogLoss
    brier: BrierScore
    calibration: Calibration
    auc: RocAuc | None
    rows: int = 0
    skipped: int = 0
    blank_lines: int = 0
    unnormalised: int = 0
    first_unnormalised: str | None = None
    examples: list[Skipped] = field(default_factory=list)


def build_result(totals: Totals, base: Base) -> ScoreResult:
    """The metrics of everything in ``totals``, log loss in ``base``."""
    if totals.rows == 0:
        skipped = f" ({totals.skipped} invalid rows skipped)" if totals.skipped else ""
        raise CrossentError(f"no valid rows to score{skipped}")
    if totals.loss.weight_sum <= 0:
        raise CrossentError("all weights are 0; nothing to score")
    notes: list[str] = []
    nats = totals.loss.mean_loss_nats()
    class_weight = totals.loss.class_weight
    if class_weight is None:  # cannot happen with rows > 0; keeps the type precise
        raise CrossentError("no rows were added; nothing to score")
    prior_h = totals.loss.prior_entropy_nats()
    ne = _or_note(lambda: normalized_from(nats, prior_h), "normalized entropy", notes)
    auc = auc_error = None
    if totals.auc is not None:
        auc = _or_note(totals.auc.result, "ROC AUC", notes)
        auc_error = None if auc is None else totals.auc.max_error()
    ratio = _or_note(totals.calibration.ratio, "calibration ratio", notes)
    curve = totals.calibration.curve()
    return ScoreResult(
        rows=totals.rows,
        weight=totals.loss.weight_sum,
        skipped=totals.skipped,
        skipped_examples=list(totals.examples),
        blank_lines=totals.blank_lines,
        unit=unit_name(base),
        log_loss=nats / log_divisor(base),
        log_loss_nats=nats,
        log_loss_bits=nats / np.log(2.0),
        normalized_entropy=ne,
        perplexity=float(np.exp(nats)),
        brier=totals.brier.result(),
        ece=curve.expected_calibration_error,
        bins=totals.calibration.bins,
        calibration_ratio=ratio
        if ratio is None or isinstance(ratio, float)
        else list(map(float, ratio)),
        roc_auc=auc,
        roc_auc_max_error=auc_error,
        prior=(class_weight / class_weight.sum()).tolist(),
        prior_entropy=prior_h / log_divisor(base),
        curve=curve,
        unnormalised_rows=totals.unnormalised,
        first_unnormalised=totals.first_unnormalised,
        notes=notes,
    )


def _or_note(compute: Any, name: str, notes: list[str]) -> Any:
    try:
        return compute()
    except CrossentError as error:
        notes.append(f"{name} undefined: {error}")
        return None
