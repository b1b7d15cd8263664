"""Shared pieces of the recommender commands: loading a watch log, rendering results."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from crossent._validation.choices import DataFormat, check_choice
from crossent.recsys.data.interactions import Interactions, implicit
from crossent.recsys.report import (
    cross_entropy_rows,
    objective_rows,
    ranking_rows,
    retrieval_rows,
)
from crossent.recsys.results import RunResult
from crossent.report import Table


def to_rich(table: Table, title: str | None = None) -> RichTable:
    """A rich rendering of a report :class:`~crossent.recsys.report.Table` (numbers to 4
    significant digits)."""
    rich = RichTable(title=title, title_justify="left")
    for header in table.headers:
        rich.add_column(str(header), justify="left" if header == table.headers[0] else "right")
    for row in table.rows:
        rich.add_row(*(f"{cell:.4g}" if isinstance(cell, float) else str(cell) for cell in row))
    return rich


def load_watches(data: str, format: str, min_rating: float | None) -> Interactions:
    """Load an interaction file; keep rows with ``rating >= min_rating`` when it has ratings."""
    from crossent.recsys.data.loaders import load_interactions

    check_choice(format, "--format", DataFormat)
    watches = load_interactions(Path(data), format)  # type: ignore[arg-type]
    if min_rating is not None and watches.rating is not None:
        watches = implicit(watches, min_rating)
    return watches


def print_result(console: Console, result: RunResult) -> None:
    """The retrieval (or objectives), cross-entropy and ranking tables of a run."""
    if result.objectives:
        table = objective_rows(result)
        console.print(to_rich(table, "Candidate generation: training objectives (test)"))
        console.print(table.caption or "", soft_wrap=True)
    elif result.retrieval:
        table = retrieval_rows(result)
        console.print(to_rich(table, "Candidate generation (test)"))
        console.print(table.caption or "", soft_wrap=True)
    if result.cross_entropy:
        console.print(to_rich(cross_entropy_rows(result)))
    if result.ranking_metrics:
        console.print(to_rich(ranking_rows(result), "Ranking: P(watch), test examples"))


def print_bayes_gaps(console: Console, result: RunResult) -> None:
    """Each candidate model's test cross-entropy and its distance from the Bayes limit (bits)."""
    ce = result.cross_entropy
    if "bayes_bits" not in ce:
        return
    named = {f"{result.trained_kind} model": ce, **result.baseline_cross_entropy}
    for name, values in named.items():
        gap = values["bits"] - ce["bayes_bits"]
        expected = values["expected_bits"] - ce["bayes_bits"]
        console.print(
            f"{name}: test cross-entropy {values['bits']:.3f} bits on the drawn watches "
            f"({100 * (values['nats'] / ce['bayes_nats'] - 1):+.1f}%), "
            f"{values['expected_bits']:.3f} bits in exact expectation "
            f"({100 * (values['expected_nats'] / ce['bayes_nats'] - 1):+.1f}%); Bayes limit "
            f"{ce['bayes_bits']:.3f} bits: {gap:+.3f} / {expected:+.3f} bits"
        )
