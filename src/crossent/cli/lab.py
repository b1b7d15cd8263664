"""`crossent lab`: one model trained under each loss, measured side by side."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crossent.cli._console import make_console
from crossent.cli._options import ThreadsOption, each_of, listed, one_of
from crossent.errors import CrossentError
from crossent.lab.config import LOSSES, MODELS, LabConfig
from crossent.lab.data import DATASETS

if TYPE_CHECKING:
    from rich.console import Console

    from crossent.lab.data import LabData
    from crossent.lab.results import LabResult, LossRun


def lab(
    dataset: Annotated[
        str | None,
        typer.Option(
            callback=one_of(DATASETS),
            help=f"Bundled data set: {listed(DATASETS)} (synthetic: two Gaussians with a known "
            "Bayes error). Default digits.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="A CSV with a header row instead of --dataset (needs --target)."),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The CSV's label column; every other column is a feature.")
    ] = None,
    imbalance: Annotated[
        float | None,
        typer.Option(
            help="Keep this fraction (e.g. 0.05) of each minority class: the smaller half of "
            "the classes by count."
        ),
    ] = None,
    losses: Annotated[
        str, typer.Option(callback=each_of(LOSSES), help=f"Comma-separated: {', '.join(LOSSES)}.")
    ] = ",".join(LOSSES),
    seeds: Annotated[int, typer.Option(help="Seeds 0..N-1; the table shows mean ± std.")] = 5,
    epochs: Annotated[int, typer.Option(help="Most epochs per run (early stopping ends sooner).")]
    = 100,
    model: Annotated[
        str, typer.Option(callback=one_of(MODELS), help="mlp (one hidden layer) or linear.")
    ] = "mlp",
    out: Annotated[
        Path, typer.Option(help="Folder for lab.html, lab.md, lab.json and the predictions.")
    ] = Path("crossent-lab"),
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on stdout.")
    ] = False,
    threads: ThreadsOption = None,
) -> None:
    """Train the same model with the same seed and optimiser under each loss and compare
    accuracy, macro and minority-class recall, log loss (bits), ECE, Brier and epochs to
    converge, with mean ± std over seeds. Writes lab.html and lab.md with training curves,
    reliability diagrams and per-class recall bars.
    """

    from crossent._runtime import configure_threads, keep_freed_memory
    from crossent.lab.config import parse_losses
    from crossent.lab.report import to_jsonable, write_lab_report
    from crossent.lab.run import load_lab_data

    configure_threads(threads)
    keep_freed_memory()
    if data is not None and dataset is not None:
        raise CrossentError("give --dataset or --data, not both")
    if target is not None and data is None:
        raise CrossentError(f"--target {target!r} needs --data <file.csv>")
    config = LabConfig(
        dataset=dataset or "digits",
        data_path=None if data is None else str(data),
        target=target,
        imbalance=imbalance,
        losses=parse_losses(losses),
        seeds=seeds,
        epochs=epochs,
        model=model,
    )
    err = make_console(stderr=True)
    result = _run_with_progress(config, load_lab_data(config), err, show=not json_output)
    writing = f"writing {out / 'lab.html'} and {out / 'lab.md'}"
    with nullcontext() if json_output else err.status(writing):
        files = write_lab_report(result, out)
    if json_output:
        payload = to_jsonable({**result.to_dict(), "files": {k: str(v) for k, v in files.items()}})
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_table(result)
    console = make_console()
    console.print(f"{result.seconds:.1f} s; wrote {files['html']} and {files['markdown']}")


def _run_with_progress(
    config: LabConfig, lab_data: LabData, err: Console, *, show: bool
) -> LabResult:
    """:func:`crossent.lab.run_lab` with a progress bar on stderr (one step per loss and seed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from crossent.lab.run import run_lab

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not show or not err.is_terminal,
    ) as progress:
        task = progress.add_task(f"lab on {lab_data.name}", total=config.seeds * len(config.losses))

        def advance(run: LossRun) -> None:
            done = f"lab on {lab_data.name}: {run.loss} seed {run.seed} done"
            progress.update(task, advance=1, description=done)
            if show and not err.is_terminal:  # a pipe or file: one line per run, not a bar
                err.print(done)

        return run_lab(config, data=lab_data, on_run_done=advance)


def _print_table(result: LabResult) -> None:
    from rich.table import Table

    from crossent.lab.config import METRICS
    from crossent.lab.report import best_losses, column_label, format_mean_std

    data = result.data
    table = Table(
        title=f"Loss lab: {data.name}, {result.config.model}, "
        f"mean ± std over {result.config.seeds} seed(s) (bold = best)",
    )
    table.add_column("loss")
    for metric in METRICS:
        table.add_column(column_label(metric, result), justify="right")
    best = best_losses(result)
    for loss, row in result.summary().items():
        cells = []
        for metric in METRICS:
            text = format_mean_std(*row[metric], metric)
            cells.append(f"[bold]{text}[/]" if best[metric] == loss else text)
        table.add_row(loss, *cells)
    if data.bayes_error is not None and data.bayes_log_loss_bits is not None:
        table.add_row(
            "[italic]Bayes limit[/]",
            f"{1 - data.bayes_error:.3f}",
            "",
            "",
            f"{data.bayes_log_loss_bits:.3f}",
            "0",
            "",
            "",
        )
    console = make_console()
    console.print(table)
