"""crossent: cross-entropy done right, end to end.

The public API is what this module re-exports: the losses, ``nn``, ``metrics``,
``distributed``, the errors and the validation switch. The applications (``crossent.lab``,
``crossent.recsys``, ``crossent.report``, ``crossent.io``) are reached by their package names.
Names that need torch load on first use, so that NumPy-only work such as ``crossent.metrics``
and ``crossent score`` starts without importing torch and numba.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossent._runtime import prepare_environment

# before anything loads torch or numba: their OpenMP pools read the wait policy at load
prepare_environment()

from crossent._lazy import lazy_names  # noqa: E402
from crossent._validation.switch import set_validation, validation  # noqa: E402
from crossent.errors import CrossentError, DataFileError, OptionError  # noqa: E402
from crossent.units import log_divisor  # noqa: E402

if TYPE_CHECKING:
    from crossent import distributed, metrics, nn
    from crossent.distributed import shard_range, sharded_cross_entropy
    from crossent.losses import (
        binary_cross_entropy,
        class_balanced_weights,
        cross_entropy,
        focal_loss,
    )
    from crossent.losses.linear import linear_cross_entropy

__version__ = "0.1.0"

# public name -> the module that defines it (a module itself where the two are the same)
_LAZY = {
    "binary_cross_entropy": "crossent.losses",
    "class_balanced_weights": "crossent.losses",
    "cross_entropy": "crossent.losses",
    "focal_loss": "crossent.losses",
    "linear_cross_entropy": "crossent.losses.linear",
    "shard_range": "crossent.distributed",
    "sharded_cross_entropy": "crossent.distributed",
    "distributed": "crossent.distributed",
    "metrics": "crossent.metrics",
    "nn": "crossent.nn",
}


__getattr__ = lazy_names("crossent", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "CrossentError",
    "DataFileError",
    "OptionError",
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
    "set_validation",
    "shard_range",
    "sharded_cross_entropy",
    "validation",
]
