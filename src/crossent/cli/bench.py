"""`crossent bench`: the fused kernels against PyTorch on this machine, as a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from crossent.errors import CrossentError

if TYPE_CHECKING:  # torch loads only when the benchmark runs
    from crossent import benchmarking as _benchmarks

Suite = Literal["cross-entropy", "linear", "all"]


def _render(title: str, results: list[_benchmarks.Result], console: Console) -> None:
    from crossent import benchmarking as _benchmarks

    table = Table(title=title)
    for column in _benchmarks.TABLE_HEADER:
        table.add_column(column, justify="left" if column == "contender" else "right")
    for row in _benchmarks.table_rows(results, "torch eager"):
        table.add_row(*row)
    console.print(table)


def bench(
    suite: Annotated[
        str, typer.Option(help='What to run: "cross-entropy", "linear" or "all".')
    ] = "all",
    quick: Annotated[
        bool, typer.Option(help="Small sizes (CE 1024x8192; linear N=2048, D=128, V=20000).")
    ] = False,
    reps: Annotated[int, typer.Option(help="Timed repetitions after one warm-up.")] = 3,
    memory: Annotated[
        bool, typer.Option(help="Measure each contender's extra peak RSS in a subprocess.")
    ] = True,
) -> None:
    """Time fused cross-entropy and chunked linear cross-entropy against PyTorch.

    Forward + backward in float32, median of --reps runs; speed-up and memory relative to
    torch eager. Full sizes are the issue's: CE N=4096, C=32768; linear N=8192, D=256,
    V=100,000 (eager needs about 10 GiB there). Shares the code of benchmarks/*.py.
    """
    if suite not in ("cross-entropy", "linear", "all"):
        raise CrossentError(f'suite = {suite!r} is not one of "cross-entropy", "linear", "all"')
    if reps < 1:
        raise CrossentError(f"reps = {reps} must be >= 1")
    from crossent import benchmarking as _benchmarks

    console = Console()
    console.print(_benchmarks.machine_load())
    runs: list[tuple[str, str, dict[str, int]]] = []
    if suite in ("cross-entropy", "all"):
        sizes = {"rows": 1024, "classes": 8192} if quick else {"rows": 4096, "classes": 32768}
        runs.append(
            (f"cross-entropy N={sizes['rows']} C={sizes['classes']}", "cross_entropy", sizes)
        )
    if suite in ("linear", "all"):
        sizes = (
            {"rows": 2048, "dim": 128, "classes": 20_000}
            if quick
            else {"rows": 8192, "dim": 256, "classes": 100_000}
        )
        runs.append(
            (
                f"linear + cross-entropy N={sizes['rows']} D={sizes['dim']} V={sizes['classes']}",
                "linear_cross_entropy",
                sizes,
            )
        )
    for title, name, sizes in runs:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(title, total=None)

            def report(message: str, task: TaskID = task, title: str = title) -> None:
                progress.update(task, description=f"{title}: {message}")

            results = _benchmarks.run_suite(
                name, sizes, reps=reps, memory=memory, progress=report
            )
        _render(title, results, console)
    console.print(_benchmarks.machine_load())
