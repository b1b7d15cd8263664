"""crossent: cross-entropy done right, end to end.

The public API is what this module re-exports; everything else is private.
"""

from crossent.errors import CrossentError, DataFileError
from crossent.units import log_divisor

__version__ = "0.1.0"

__all__ = [
    "CrossentError",
    "DataFileError",
    "__version__",
    "log_divisor",
]
