"""User-facing errors: one place, one type.

Every error a user can cause raises :class:`CrossentError` (a ``ValueError``) whose message
names the argument, the offending value and where it is (index, row, file line). The CLI prints
such a message on one line and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Callable


class CrossentError(ValueError):
    """Bad input to a crossent function: the message says which argument, value and position."""


class OptionError(CrossentError):
    """A bad value of one named argument, said in the words of whoever named it.

    The library names a keyword (``history = 0 must be an integer >= 1``); the command line
    maps that keyword to the option as typed, once, at its boundary (:meth:`renamed`), and the
    same rule then reads ``--history = 0 must be an integer >= 1``. ``describe`` writes the
    message for a given name, so the wording lives only in :mod:`crossent._validation`.

    Example:
        >>> error = OptionError("history", lambda name: f"{name} = 0 must be >= 1")
        >>> print(error)
        history = 0 must be >= 1
        >>> print(error.renamed("--history"))
        --history = 0 must be >= 1
    """

    def __init__(self, name: str, describe: Callable[[str], str]) -> None:
        super().__init__(describe(name))
        self.name = name
        self._describe = describe

    def renamed(self, name: str) -> OptionError:
        """The same error, naming ``name`` (an option as typed) instead."""
        return OptionError(name, self._describe)


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
