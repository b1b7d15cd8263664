"""The ``crossent`` command: a thin typer layer over the library.

Each sub-command lives in its own module, ``crossent/cli/<name>.py``: it parses its options,
calls one library function and renders the result. Library errors
(:class:`crossent.errors.CrossentError`) become one line on stderr and exit status 2, never a
traceback. Command modules import torch and the heavy parts of the library only when they run,
so ``crossent --help`` and ``crossent score`` start without torch.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from crossent.cli import (
    bench,
    convert,
    demo,
    evaluate,
    lab,
    recommend,
    score,
    serve,
    tour,
    train,
)
from crossent.errors import CrossentError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class _Group(TyperGroup):
    """Turns a CrossentError raised by any sub-command into one line and exit status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CrossentError as error:
            err_console.print(f"[bold red]error:[/] {error}")
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    help="crossent: cross-entropy done right: losses, kernels, metrics, recommender, loss lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """crossent: cross-entropy done right: losses, kernels, metrics, recommender, loss lab."""


app.command("demo")(demo.demo)
app.command("tour")(tour.tour)
app.command("score")(score.score)
app.command("bench")(bench.bench)
app.command("lab")(lab.lab)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("recommend")(recommend.recommend)
app.command("convert")(convert.convert)
app.command("serve")(serve.serve)


def main() -> None:
    """Console-script entry point."""
    app()
