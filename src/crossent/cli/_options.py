"""Option values with a fixed set of choices, accepted in either spelling.

A choice such as ``breast_cancer`` or ``in-batch`` may be typed with ``-`` or ``_``
(``--dataset breast-cancer`` and ``--dataset breast_cancer`` are the same). The valid values
come from the library's own vocabulary, a ``Literal`` type (read by
:func:`crossent._validation.choices.choices_of`) or a tuple of strings, so the command and the
library cannot drift apart. Used as a typer callback, the option's value reaches the command in
the library's spelling::

    dataset: Annotated[str, typer.Option(callback=one_of(DATASETS), help=...)] = "digits"

An unknown value is a :class:`~crossent.errors.CrossentError` naming the option and listing
the valid values, which the ``crossent`` group prints as one line with exit status 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from crossent._validation.choices import choices_of as literal_values
from crossent._validation.choices import not_a_choice
from crossent._validation.numbers import check_int

Callback = Callable[[typer.CallbackParam, Any], Any]


def choices_of(choices: Any) -> tuple[str, ...]:
    """The valid values: the arguments of a ``Literal`` type, or the strings of a tuple."""
    return literal_values(choices) or tuple(choices)


def listed(choices: Any) -> str:
    """``"a, b or c"``: the valid values for a help text."""
    values = choices_of(choices)
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def _key(text: str) -> str:
    return text.strip().replace("-", "_")


def _option_name(param: typer.CallbackParam) -> str:
    return max(param.opts, key=len) if param.opts else str(param.name)


def _canonical(choices: Any) -> Callable[[typer.CallbackParam, str], str]:
    values = choices_of(choices)
    by_key = {_key(value): value for value in values}

    def canonical(param: typer.CallbackParam, text: str) -> str:
        try:
            return by_key[_key(text)]
        except KeyError:
            raise not_a_choice(_option_name(param), text, values) from None

    return canonical


def one_of(choices: Any) -> Callback:
    """A typer callback: one value of ``choices`` in either spelling, returned canonical.

    ``None`` (an option left unset) passes through.
    """
    canonical = _canonical(choices)

    def callback(param: typer.CallbackParam, value: str | None) -> str | None:
        return None if value is None else canonical(param, value)

    return callback


def each_of(choices: Any) -> Callback:
    """A typer callback: comma-separated values of ``choices``, each in either spelling.

    Returns the canonical values joined by ``","`` (empty items are dropped); repeats and an
    empty list are left for the library to judge.
    """
    canonical = _canonical(choices)

    def callback(param: typer.CallbackParam, value: str | None) -> str | None:
        if value is None:
            return None
        return ",".join(canonical(param, part) for part in value.split(",") if part.strip())

    return callback


def _threads(param: typer.CallbackParam, value: int | None) -> int | None:
    if value is not None:
        check_int(value, _option_name(param), low=1)
    return value


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        callback=_threads,
        help="Threads for torch and numba. Default: CROSSENT_THREADS, else OMP_NUM_THREADS, "
        "else the cores this process may run on.",
        show_default=False,
    ),
]
"""``--threads N`` of the training commands (``train``, ``demo``, ``lab``); N >= 1."""

JsonFileOption = Annotated[
    Path | None,
    typer.Option(
        "--json",
        help="Also write the printed tables as data to this JSON file "
        '({title: {"headers", "rows", "caption"}}).',
        show_default=False,
    ),
]
"""``--json FILE`` of ``crossent train`` and ``crossent demo``: the result tables as data."""
