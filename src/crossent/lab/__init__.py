"""The loss lab: one model trained with many losses on the same data, seeds and optimiser.

:mod:`.config` names the losses, models and metrics and holds :class:`LabConfig`;
:mod:`.data` loads the built-in and CSV data sets; :mod:`.run` trains (torch);
:mod:`.results` holds what a run produces and scores it; :mod:`.report` writes the table,
figures and the HTML/Markdown report. Only :func:`run_lab` and :func:`load_lab_data` need
torch, and they load it on first use, so the CLI can read the vocabularies cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crossent.lab.config import LOSSES, METRICS, MODELS, LabConfig, parse_losses
from crossent.lab.results import LabResult, LossRun, evaluate_predictions

if TYPE_CHECKING:
    from crossent.lab.run import load_lab_data, run_lab

_NEEDS_TORCH = ("load_lab_data", "run_lab")


def __getattr__(name: str) -> Any:
    if name not in _NEEDS_TORCH:
        raise AttributeError(f"module 'crossent.lab' has no attribute {name!r}")
    value = getattr(importlib.import_module("crossent.lab.run"), name)
    globals()[name] = value
    return value


__all__ = [
    "LOSSES",
    "METRICS",
    "MODELS",
    "LabConfig",
    "LabResult",
    "LossRun",
    "evaluate_predictions",
    "load_lab_data",
    "parse_losses",
    "run_lab",
]
