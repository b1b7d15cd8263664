"""`crossent bench`: the fused kernels against PyTorch on this machine, as a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from crossent._validation.numbers import check_int
from crossent.cli._console import make_console
from crossent.cli._options import listed, one_of

if TYPE_CHECKING:  # torch loads only when the benchmark runs
    from rich.console import Console

    from crossent.benchmarking import Result

Suite = Literal["cross-entropy", "linear", "all"]

# (suite, quick) -> the problem sizes; the full ones are those of benchmarks/*.py
_SIZES: dict[tuple[str, bool], dict[str, int]] = {
    ("cross-entropy", False): {"rows": 4096, "classes": 32768},
    ("cross-entropy", True): {"rows": 1024, "classes": 8192},
    ("linear", False): {"rows": 8192, "dim": 256, "classes": 100_000},
    ("linear", True): {"rows": 2048, "dim": 128, "classes": 20_000},
}


def _describe(*, quick: bool) -> str:
    ce, linear = _SIZES["cross-entropy", quick], _SIZES["linear", quick]
    return (
        f"cross-entropy N={ce['rows']}, C={ce['classes']}; "
        f"linear N={linear['rows']}, D={linear['dim']}, V={linear['classes']}"
    )


def _runs(suite: str, quick: bool) -> list[tuple[str, str, dict[str, int]]]:
    """(table title, benchmarking suite name, sizes) for each part of ``suite``."""
    runs = []
    if suite in ("cross-entropy", "all"):
        sizes = _SIZES["cross-entropy", quick]
        title = f"cross-entropy N={sizes['rows']} C={sizes['classes']}"
        runs.append((title, "cross_entropy", sizes))
    if suite in ("linear", "all"):
        sizes = _SIZES["linear", quick]
        title = f"linear + cross-entropy N={sizes['rows']} D={sizes['dim']} V={sizes['classes']}"
        runs.append((title, "linear_cross_entropy", sizes))
    return runs


def bench(
    suite: Annotated[
        str, typer.Option(callback=one_of(Suite), help=f"What to run: {listed(Suite)}.")
    ] = "all",
    quick: Annotated[bool, typer.Option(help=f"Small sizes: {_describe(quick=True)}.")] = False,
    reps: Annotated[int, typer.Option(help="Timed repetitions after one warm-up.")] = 3,
    memory: Annotated[
        bool, typer.Option(help="Measure each contender's extra peak RSS in a subprocess.")
    ] = True,
) -> None:
    """Time fused cross-entropy and chunked linear cross-entropy against PyTorch.

    Forward + backward in float32, median of --reps runs; speed-up and extra peak memory
    relative to torch eager, which materialises the N x C (or N x V) logits. Without --quick
    the sizes are those of benchmarks/*.py, whose code this shares (crossent.benchmarking).
    """

    from crossent import benchmarking

    if reps < 1:
        check_int(reps, "--reps", low=1)
    console = make_console()
    console.print(benchmarking.machine_load())
    for title, name, sizes in _runs(suite, quick):
        results = _run_with_progress(title, name, sizes, reps, memory, console)
        _render(title, results, console)
    console.print(benchmarking.machine_load())


def _run_with_progress(
    title: str, name: str, sizes: dict[str, int], reps: int, memory: bool, console: Console
) -> list[Result]:
    """:func:`crossent.benchmarking.run_suite` with a spinner naming the contender being run."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from crossent import benchmarking

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(title, total=None)

        def report(message: str) -> None:
            progress.update(task, description=f"{title}: {message}")

        return benchmarking.run_suite(name, sizes, reps=reps, memory=memory, progress=report)


def _render(title: str, results: list[Result], console: Console) -> None:
    """The contenders' times and memory as ratios to torch eager."""
    from rich.table import Table

    from crossent import benchmarking

    table = Table(title=title)
    for column in benchmarking.TABLE_HEADER:
        table.add_column(column, justify="left" if column == "contender" else "right")
    for row in benchmarking.table_rows(results, "torch eager"):
        table.add_row(*row)
    console.print(table)
