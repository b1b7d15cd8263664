"""`crossent score`: log loss, normalized entropy, calibration and AUC of prediction files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, cast

import typer

from crossent.errors import CrossentError
from crossent.units import Base

PROGRESS_BYTES = 4 << 20  # files larger than this get a progress bar


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


def score(
    files: Annotated[
        list[Path], typer.Argument(help="Prediction files: .csv, .tsv, .parquet or .jsonl.")
    ],
    target: Annotated[
        str | None, typer.Option(help="Column with the true label (guessed if unambiguous).")
    ] = None,
    prob: Annotated[str | None, typer.Option(help="Binary: column with P(y = 1).")] = None,
    probs: Annotated[
        str | None, typer.Option(help="Multi-class: probability columns C1,C2,... in class order.")
    ] = None,
    logits: Annotated[
        str | None,
        typer.Option(help="Logit columns C1,C2,... (one column: a binary logit)."),
    ] = None,
    weight: Annotated[str | None, typer.Option(help="Column with row weights.")] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Declared target values, one per class: NEG,POS or L0,L1,... "
            "(default 0,1 or 0..C-1)."
        ),
    ] = None,
    base: Annotated[
        str, typer.Option(help="Unit of the log loss: nats, bits or a number > 1.")
    ] = "nats",
    bins: Annotated[int, typer.Option(help="Uniform bins for calibration (ECE, plot).")] = 15,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on stdout.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write a reliability diagram with a histogram to this PNG."),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(help="Skip bad rows (reported with their line numbers) instead of stopping."),
    ] = False,
) -> None:
    """Score predicted probabilities against true labels: log loss (nats or bits), normalized
    entropy, perplexity, Brier, calibration (ECE, predicted/observed) and ROC AUC.

    Files of any size are read in blocks, in fixed memory. A bad row stops with its file, line
    and column (exit status 2) unless --skip-invalid is given.
    """
    from rich.console import Console

    from crossent import io
    from crossent.metrics.file_columns import guess_columns
    from crossent.metrics.files import FileScorer
    from crossent.units import log_divisor

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    unit = cast(Base, base)  # log_divisor reads "nats", "bits" or a number given as text
    log_divisor(unit)
    if not files:
        raise CrossentError("pass at least one prediction file")
    available = io.read_columns(files[0])
    columns, guesses = guess_columns(
        available,
        target=target,
        prob=prob,
        probs=_split(probs),
        logits=_split(logits),
        weight=weight,
    )
    for guess in guesses:
        console.print(f"[dim]{guess}[/]")
    scorer = FileScorer(
        columns, labels=_split(labels) or None, bins=bins, skip_invalid=skip_invalid
    )
    sizes = [path.stat().st_size if path.is_file() else 0 for path in files]
    if sum(sizes) > PROGRESS_BYTES:
        _score_with_progress(scorer, files, sizes, console)
    else:
        for path in files:
            scorer.add_file(path)
    result = scorer.result(unit)
    if plot is not None:
        from crossent import report

        name = files[0].name if len(files) == 1 else f"{len(files)} files"
        figure = report.reliability_figure({name: result.curve}, title="Reliability")
        report.save_figure(figure, plot)
    if json_output:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_table(result, files, Console(highlight=False))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    if result.unnormalised_rows:
        console.print(
            f"[yellow]warning:[/] {result.unnormalised_rows} rows have probabilities not "
            f"summing to 1 (first: {result.first_unnormalised}); scored as given"
        )
    if result.skipped:
        where = "; ".join(str(example) for example in result.skipped_examples)
        console.print(f"[yellow]skipped {result.skipped} invalid rows[/] (first: {where})")
    if plot is not None:
        console.print(f"[dim]wrote {plot}[/]")


def _score_with_progress(scorer, files, sizes, console) -> None:  # type: ignore[no-untyped-def]
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("scoring", total=sum(sizes))
        done_before = 0
        for path, size in zip(files, sizes, strict=True):
            progress.update(task, description=f"scoring {path.name}")
            offset = done_before

            def advance(position: int, offset: int = offset) -> None:
                progress.update(task, completed=offset + position)

            scorer.add_file(path, advance)
            done_before += size


def _fmt(value: float | None, digits: int = 6) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    return f"{value:.{digits}g}"


def _print_table(result, files, console) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    title = str(files[0]) if len(files) == 1 else f"{len(files)} files"
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("", style="dim")
    weight_note = f"total weight {result.weight:.6g}" if result.weight != result.rows else ""
    table.add_row("rows scored", f"{result.rows:,}", weight_note)
    if result.skipped:
        table.add_row("rows skipped", f"{result.skipped:,}", "invalid (--skip-invalid)")
    table.add_row(f"log loss ({result.unit})", _fmt(result.log_loss), "lower is better")
    if result.unit != "nats":
        table.add_row("log loss (nats)", _fmt(result.log_loss_nats), "")
    if result.unit != "bits":
        table.add_row("log loss (bits)", _fmt(result.log_loss_bits), "")
    table.add_row("normalized entropy", _fmt(result.normalized_entropy), "< 1 beats the prior")
    table.add_row(f"prior entropy ({result.unit})", _fmt(result.prior_entropy), "")
    table.add_row("perplexity", _fmt(result.perplexity), "")
    table.add_row("Brier score", _fmt(result.brier), "")
    table.add_row(f"ECE ({result.bins} bins)", _fmt(result.ece), "0 is calibrated")
    ratio = result.calibration_ratio
    if isinstance(ratio, list):
        ratio_text = ", ".join(_fmt(r, 4) for r in ratio)
    else:
        ratio_text = _fmt(ratio)
    table.add_row("predicted / observed", ratio_text, "1 is calibrated")
    if len(result.prior) == 2:
        table.add_row("base rate", _fmt(result.prior[1]), "observed P(y = 1)")
        auc_note = (
            f"± {result.roc_auc_max_error:.1g} (histogram)" if result.roc_auc_max_error else ""
        )
        table.add_row("ROC AUC", _fmt(result.roc_auc), auc_note)
    console.print(table)
