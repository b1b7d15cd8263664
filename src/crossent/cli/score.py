"""`crossent score`: log loss, normalized entropy, calibration and AUC of prediction files."""

from __future__ import annotations

import json
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from crossent.cli._console import make_console
from crossent.errors import CrossentError
from crossent.units import Base

if TYPE_CHECKING:
    from crossent.io import Source
    from crossent.scoring.columns import Columns
    from crossent.scoring.files import FileScorer

PROGRESS_BYTES = 4 << 20  # files larger than this get a progress bar

#: How many segments (the largest) get a curve on the --plot figure.
PLOTTED_SEGMENTS = 6


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


Files = Annotated[
    list[str] | None,
    typer.Argument(
        help="Prediction files (.csv, .tsv, .jsonl, maybe .gz/.bz2/.zst/.lz4; .parquet), "
        "folders or glob patterns; Hive partition folders (date=...) become columns."
    ),
]
WeightColumn = Annotated[str | None, typer.Option(help="Column with row weights.")]
ProbColumns = Annotated[
    str | None,
    typer.Option(
        help="Multi-class: probability columns C1,C2,... in class order; a target value "
        "equal to a column's name is that class."
    ),
]


def score(
    files: Files = None,
    target: Annotated[
        str | None, typer.Option(help="Column with the true label (guessed if unambiguous).")
    ] = None,
    prob: Annotated[str | None, typer.Option(help="Binary: column with P(y = 1).")] = None,
    probs: ProbColumns = None,
    logits: Annotated[
        str | None, typer.Option(help="Logit columns C1,C2,... (one column: a binary logit).")
    ] = None,
    weight: WeightColumn = None,
    labels: Annotated[
        str | None,
        typer.Option(help="Target values, one per class: NEG,POS or L0,L1,... (default 0,1)."),
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="Binary: the target value of the positive class (yes).")
    ] = None,
    by: Annotated[
        list[str] | None, typer.Option(help="Also score each segment of this column (repeatable).")
    ] = None,
    max_segments: Annotated[int, typer.Option(help="Most segments --by may create.")] = 1000,
    base: Annotated[str, typer.Option(help="Log loss unit: nats, bits or a number > 1.")] = "nats",
    bins: Annotated[int, typer.Option(help="Uniform bins for calibration (ECE, plot).")] = 15,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Reliability diagram PNG (a curve per top segment).")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Skip bad rows (reported with their lines) instead of stopping.")
    ] = False,
    ranking: Annotated[
        Path | None, typer.Option(help="Score top-k recommendations (user, item[, rank|score]).")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="With --ranking: held-out (user, item).")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="With --ranking: the cut-off K.")] = 10,
    user_column: Annotated[
        str | None, typer.Option(help="With --ranking: the user column.")
    ] = None,
    item_column: Annotated[
        str | None, typer.Option(help="With --ranking: the item column.")
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (tcp://host:8786) or 'local': a task per file."),
    ] = None,
) -> None:
    """Score predicted probabilities against true labels: log loss (nats or bits), normalized
    entropy, perplexity, Brier, calibration (ECE, predicted/observed) and ROC AUC, overall and
    per --by segment; or, with --ranking, HR@K, Recall@K, NDCG@K and MRR of recommendations.

    Files of any size are read in blocks, in fixed memory. A bad row stops with its file, line
    and column (exit status 2) unless --skip-invalid is given.
    """

    from crossent.units import log_divisor

    console = make_console(stderr=True)
    unit = cast(Base, base)  # log_divisor reads "nats", "bits" or a number given as text
    log_divisor(unit)
    if ranking is not None or truth is not None:
        _score_ranking(ranking, truth, k, user_column, item_column, json_output)
        return
    if not files:
        raise CrossentError("pass at least one prediction file (or --ranking and --truth)")
    options: dict[str, Any] = dict(target=target, prob=prob, probs=_split(probs))
    options |= dict(logits=_split(logits), weight=weight)
    settings: dict[str, Any] = dict(labels=_split(labels) or None, positive=positive)
    settings["by"] = tuple(by or ())
    settings |= dict(max_segments=max_segments, bins=bins, skip_invalid=skip_invalid)
    result, name = _score_files(files, options, settings, unit, dask, console)
    _render(result, name, plot, json_output, console)


def _score_files(
    files: list[str],
    options: dict[str, Any],
    settings: dict[str, Any],
    unit: Base,
    scheduler: str | None,
    console: Any,
) -> tuple[Any, str]:
    from crossent import io
    from crossent.scoring.columns import guess_columns
    from crossent.scoring.files import FileScorer, merge_in_order, score_file

    sources = io.expand(files)
    columns, guesses = guess_columns(io.source_columns(sources[0]), **options)
    for guess in guesses:
        console.print(f"[dim]{guess}[/]")
    name = str(sources[0].path) if len(sources) == 1 else f"{len(sources)} files"
    FileScorer(columns, **settings)  # bad settings fail here, before any file is read
    if scheduler is not None:
        from crossent.scoring import dask as on_dask

        with on_dask.connect(scheduler):
            return on_dask.score_sources(sources, columns, settings, unit), name
    # one scorer per file, merged in order: the same float additions as with --dask
    sizes = [source.path.stat().st_size for source in sources]
    if sum(sizes) > PROGRESS_BYTES:
        scorer = _score_with_progress(sources, sizes, columns, settings, console)
    else:
        scorer = merge_in_order(score_file(source, columns, settings) for source in sources)
    return scorer.result(unit), name


def _score_with_progress(
    sources: list[Source],
    sizes: list[int],
    columns: Columns,
    settings: dict[str, Any],
    console: Any,
) -> FileScorer:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from crossent.scoring.files import merge_in_order, score_file

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
        offsets = list(accumulate(sizes[:-1], initial=0))

        def scored(source: Source, offset: int) -> FileScorer:
            progress.update(task, description=f"scoring {source.path.name}")

            def advance(position: int) -> None:
                progress.update(task, completed=offset + position)

            return score_file(source, columns, settings, advance)

        return merge_in_order(map(scored, sources, offsets))


def _render(result: Any, name: str, plot: Path | None, json_output: bool, console: Any) -> None:

    from crossent.cli._score_tables import print_segments, print_table, segment_name

    if plot is not None:
        from crossent import report

        curves = {name: result.curve}
        for segment in result.segments[:PLOTTED_SEGMENTS]:
            curves[segment_name(result.by, segment.key)] = segment.curve
        figure = report.reliability_figure(curves, title="Reliability")
        report.save_figure(figure, plot)
    if json_output:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        out = make_console()
        print_table(result, name, out)
        if result.by:
            print_segments(result, out)
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


def _score_ranking(
    ranking: Path | None,
    truth: Path | None,
    k: int,
    user_column: str | None,
    item_column: str | None,
    json_output: bool,
) -> None:

    from crossent.cli._score_tables import print_ranking
    from crossent.scoring.ranking_files import score_ranking_file

    if ranking is None or truth is None:
        raise CrossentError("--ranking and --truth go together: pass both files")
    result = score_ranking_file(
        ranking, truth, k=k, user_column=user_column, item_column=item_column
    )
    if json_output:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_ranking(result, ranking, make_console())
