"""The loss lab: one model trained with many losses on the same data, seeds and optimiser.

:mod:`.data` loads the built-in and CSV data sets, :mod:`.run` trains and scores, and
:mod:`.report` writes the table, figures and HTML/Markdown report.
"""

from crossent.lab.run import (
    LOSSES,
    METRICS,
    MODELS,
    LabConfig,
    LabResult,
    LossRun,
    parse_losses,
    run_lab,
)

__all__ = [
    "LOSSES",
    "METRICS",
    "MODELS",
    "LabConfig",
    "LabResult",
    "LossRun",
    "parse_losses",
    "run_lab",
]
