"""crossent: cross-entropy done right, end to end.

The public API is what this module re-exports; everything else is private.
"""

from crossent import distributed, metrics, nn
from crossent.distributed import shard_range, sharded_cross_entropy
from crossent.errors import CrossentError, DataFileError
from crossent.kernels.linear import linear_cross_entropy
from crossent.lab import LabConfig, LabResult, run_lab
from crossent.losses import (
    binary_cross_entropy,
    class_balanced_weights,
    cross_entropy,
    focal_loss,
)
from crossent.units import log_divisor

__version__ = "0.1.0"

__all__ = [
    "CrossentError",
    "DataFileError",
    "LabConfig",
    "LabResult",
    "__version__",
    "binary_cross_entropy",
    "class_balanced_weights",
    "cross_entropy",
    "distributed",
    "focal_loss",
    "linear_cross_entropy",
    "log_divisor",
    "metrics",
    "nn",
    "run_lab",
    "shard_range",
    "sharded_cross_entropy",
]
