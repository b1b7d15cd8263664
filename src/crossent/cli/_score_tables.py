"""The tables `crossent score` prints: overall metrics, segments, ranking metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

#: Segments shown in the table (the largest); --json lists them all.
TABLE_SEGMENTS = 20


def fmt(value: float | None, digits: int = 6) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    return f"{value:.{digits}g}"


def segment_name(by: tuple[str, ...], key: tuple[str, ...]) -> str:
    return ", ".join(f"{column}={value}" for column, value in zip(by, key, strict=True))


def _ratio_text(ratio: float | list[float] | None, digits: int = 6) -> str:
    if isinstance(ratio, list):
        return ", ".join(fmt(r, min(digits, 4)) for r in ratio)
    return fmt(ratio, digits)


def print_table(result: Any, title: str, console: Console) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("", style="dim")
    weight_note = f"total weight {result.weight:.6g}" if result.weight != result.rows else ""
    table.add_row("rows scored", f"{result.rows:,}", weight_note)
    if result.skipped:
        table.add_row("rows skipped", f"{result.skipped:,}", "invalid (--skip-invalid)")
    table.add_row(f"log loss ({result.unit})", fmt(result.log_loss), "lower is better")
    if result.unit != "nats":
        table.add_row("log loss (nats)", fmt(result.log_loss_nats), "")
    if result.unit != "bits":
        table.add_row("log loss (bits)", fmt(result.log_loss_bits), "")
    table.add_row("normalized entropy", fmt(result.normalized_entropy), "< 1 beats the prior")
    table.add_row(f"prior entropy ({result.unit})", fmt(result.prior_entropy), "")
    table.add_row("perplexity", fmt(result.perplexity), "")
    table.add_row("Brier score", fmt(result.brier), "")
    table.add_row(f"ECE ({result.bins} bins)", fmt(result.ece), "0 is calibrated")
    table.add_row("predicted / observed", _ratio_text(result.calibration_ratio), "1 is calibrated")
    if len(result.prior) == 2:
        table.add_row("base rate", fmt(result.prior[1]), "observed P(y = 1)")
        auc_note = (
            f"± {result.roc_auc_max_error:.1g} (histogram)" if result.roc_auc_max_error else ""
        )
        table.add_row("ROC AUC", fmt(result.roc_auc), auc_note)
    table.caption = f"labels: {result.labels}" if result.labels else None
    console.print(table)


def print_segments(result: Any, console: Console) -> None:
    shown = result.segments[:TABLE_SEGMENTS]
    table = Table(title="Per segment, largest first", show_header=True, header_style="bold")
    for name in result.by:
        table.add_column(name, overflow="fold")
    for name in ("rows", "base rate", "nats", "bits", "NE", "ECE", "p/o", "AUC"):
        table.add_column(name, justify="right")
    for segment in shown:
        table.add_row(
            *segment.key,
            f"{segment.rows:,}",
            fmt(segment.base_rate, 4),
            fmt(segment.log_loss_nats, 4),
            fmt(segment.log_loss_bits, 4),
            fmt(segment.normalized_entropy, 4),
            fmt(segment.ece, 3),
            _ratio_text(segment.calibration_ratio, 3),
            fmt(segment.roc_auc, 4),
        )
    more = len(result.segments) - len(shown)
    notes = [
        "nats, bits: log loss; NE: over the entropy of the segment's base rate; "
        f"ECE: {result.bins} bins; p/o: predicted / observed"
    ]
    if more > 0:
        notes.append(f"{more:,} smaller segments not shown: --json lists every segment")
    table.caption = "; ".join(notes)
    console.print(table)


def print_ranking(result: Any, path: Path, console: Console) -> None:
    table = Table(title=f"{path}: top-{result.k} recommendations", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("", style="dim")
    table.add_row("users evaluated", f"{result.users:,}", "users of the truth file")
    table.add_row(
        "  without recommendations",
        f"{result.users_without_recommendations:,}",
        "counted as misses",
    )
    if result.users_not_in_truth:
        table.add_row("users not in truth", f"{result.users_not_in_truth:,}", "ignored")
    table.add_row(f"HR@{result.k}", fmt(result.hit_rate), "share of users with a hit")
    table.add_row(f"Recall@{result.k}", fmt(result.recall), "hits / held-out items")
    table.add_row(f"NDCG@{result.k}", fmt(result.ndcg), "binary relevance")
    table.add_row("MRR", fmt(result.mrr), "over each user's whole list")
    console.print(table)
