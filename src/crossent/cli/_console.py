"""The one way a command makes a rich ``Console``: readable on a terminal, whole in a pipe.

On a terminal rich fits tables to the window, as usual. When the stream is not a terminal
(``crossent train ... > log.txt``, ``| cat``, a test's captured output) rich would assume 80
columns: it would wrap long lines, cut table cells short with "…" and fold a row over several
lines. There the console is given :data:`PIPE_WIDTH` columns and ``soft_wrap`` instead, so
every line is printed whole and every table at its natural width (tables never expand to
the console's width, so the large width adds no padding). Colours follow rich's rules: none
in a pipe, none where ``NO_COLOR`` is set. Rich's live progress bars draw nothing on a
non-terminal; the training loops print one line per epoch themselves.
"""

from __future__ import annotations

import sys

from rich.console import Console

#: Columns of a console writing to a pipe or file: wide enough for any table crossent prints.
PIPE_WIDTH = 4096


def is_terminal(stderr: bool = False) -> bool:
    """Whether stdout (or stderr) is an interactive terminal."""
    stream = sys.stderr if stderr else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def make_console(*, stderr: bool = False, quiet: bool = False) -> Console:
    """A console on stdout (or stderr): window-wide on a terminal, unwrapped elsewhere."""
    if is_terminal(stderr):
        return Console(stderr=stderr, quiet=quiet, highlight=False)
    return Console(stderr=stderr, quiet=quiet, highlight=False, width=PIPE_WIDTH,
                   soft_wrap=True)
