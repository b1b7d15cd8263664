"""Shared pieces of the recommender commands: loading a watch log, rendering results."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from crossent.errors import CrossentError
from crossent.recsys.data import Interactions, implicit
from crossent.recsys.pipeline import RunResult
from crossent.recsys.report import cross_entropy_rows, ranking_rows, retrieval_rows, to_rich

FORMATS = ("auto", "movielens", "recbole", "csv", "parquet")


def load_watches(data: str, format: str, min_rating: float | None) -> Interactions:
    """Load an interaction file; keep rows with ``rating >= min_rating`` when it has ratings."""
    from crossent.recsys.loaders import load_interactions

    if format not in FORMATS:
        raise CrossentError(f"--format {format!r} must be one of {', '.join(FORMATS)}")
    watches = load_interactions(Path(data), format)  # type: ignore[arg-type]
    if min_rating is not None and watches.rating is not None:
        watches = implicit(watches, min_rating)
    return watches


def print_result(console: Console, result: RunResult) -> None:
    """The retrieval, cross-entropy and ranking tables of a run."""
    if result.retrieval:
        console.print(to_rich(retrieval_rows(result), "Candidate generation (test)"))
    if result.cross_entropy:
        console.print(to_rich(cross_entropy_rows(result)))
    if result.ranking_metrics:
        console.print(to_rich(ranking_rows(result), "Ranking: P(watch), test examples"))
