"""User-facing errors: one place, one type.

Every error a user can cause raises :class:`CrossentError` (a ``ValueError``) whose message
names the argument, the offending value and where it is (index, row, file line). The CLI prints
such a message on one line and exits with status 2.
"""

from __future__ import annotations


class CrossentError(ValueError):
    """Bad input to a crossent function: the message says which argument, value and position."""


class DataFileError(CrossentError):
    """A problem in a data file, located by file name, line number and column."""

    def __init__(
        self, path: str, line: int | None, message: str, column: str | None = None
    ) -> None:
        where = str(path)
        if line is not None:
            where += f" line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.column = column
