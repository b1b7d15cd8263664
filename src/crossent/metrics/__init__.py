"""Metrics for probabilistic predictions and rankings (NumPy; no torch needed)."""

from crossent.metrics.calibration import (
    ReliabilityCurve,
    calibration_ratio,
    expected_calibration_error,
    reliability_curve,
)

__all__ = [
    "ReliabilityCurve",
    "calibration_ratio",
    "expected_calibration_error",
    "reliability_curve",
]
