"""The ``crossent`` command: a thin typer layer over the library.

Each sub-command parses its options, calls the library and renders the result. Library errors
(:class:`crossent.errors.CrossentError`) become one line on stderr and exit status 2, never a
traceback. Sub-commands live in ``crossent/_commands/<name>.py`` and are registered below.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

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


from crossent.cli import demo as _demo  # noqa: E402
from crossent.cli import tour as _tour  # noqa: E402

app.command("demo")(_demo.demo)
app.command("tour")(_tour.tour)
from crossent.cli import score as _score  # noqa: E402

app.command("score")(_score.score)
from crossent.cli import bench as _bench  # noqa: E402

app.command("bench")(_bench.bench)
from crossent.cli import lab as _lab  # noqa: E402

app.command("lab")(_lab.lab)
from crossent.cli import evaluate as _evaluate  # noqa: E402
from crossent.cli import recommend as _recommend  # noqa: E402
from crossent.cli import train as _train  # noqa: E402

app.command("train")(_train.train)
app.command("evaluate")(_evaluate.evaluate)
app.command("recommend")(_recommend.recommend)


def main() -> None:
    """Console-script entry point."""
    app()
