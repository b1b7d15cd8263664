"""Figures and self-contained reports: what people look at after a run.

Figures are plain :class:`matplotlib.figure.Figure` objects drawn off-screen (no pyplot, no
global state, no display needed), so any process can build them. Reports are single files:
HTML embeds every image as a base64 ``data:`` URI (one file to mail or open), Markdown saves
each figure beside itself and links it.

Typical use::

    from crossent import report
    fig = report.reliability_figure({"model": (probs, target), "EASE": (ease_probs, target)})
    report.write_html_report("out/report.html", "Watch model", [
        report.Section("Calibration", ["Predicted vs observed watch rate.", fig]),
        report.Section("Metrics", [report.Table(["metric", "value"], [["log loss", 0.41]])]),
    ])

Other modules append their own helpers at the end of this file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from crossent.errors import CrossentError
from crossent.metrics.calibration import BinStrategy, ReliabilityCurve, reliability_curve

CurveInput = ReliabilityCurve | tuple[ArrayLike, ArrayLike]
SeriesInput = Sequence[float] | ArrayLike | tuple[ArrayLike, ArrayLike]


@dataclass(frozen=True)
class Table:
    """A table for a report: header strings and rows of cells (numbers are formatted)."""

    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str | None = None


@dataclass(frozen=True)
class Section:
    """One headed part of a report.

    ``blocks`` are shown in order; each is a ``str`` (a paragraph; blank lines split
    paragraphs), a :class:`Table`, a matplotlib ``Figure``, or a ``Path`` to a PNG file.
    """

    heading: str
    blocks: Sequence[str | Table | Figure | Path] = field(default_factory=list)


SectionInput = Section | tuple[str, Sequence[str | Table | Figure | Path]]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _as_curve(name: str, value: CurveInput, bins: int, strategy: BinStrategy) -> ReliabilityCurve:
    if isinstance(value, ReliabilityCurve):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        probs, target = value
        return reliability_curve(probs, target, bins=bins, strategy=strategy)
    raise CrossentError(
        f"curves[{name!r}] is a {type(value).__name__}; expected a ReliabilityCurve "
        "or a (probs, target) pair"
    )


def reliability_figure(
    curves: ReliabilityCurve | Mapping[str, CurveInput],
    *,
    bins: int = 10,
    strategy: BinStrategy = "uniform",
    layout: Literal["overlay", "side_by_side"] = "overlay",
    title: str | None = None,
) -> Figure:
    """Reliability diagram (observed vs predicted, with the diagonal) above a histogram.

    Args:
        curves: one :class:`~crossent.metrics.ReliabilityCurve`, or named curves
            ``{"model": curve_or_(probs, target), ...}``. A ``(probs, target)`` pair is binned
            here with ``bins``/``strategy`` (see :func:`crossent.metrics.reliability_curve`).
        layout: ``"overlay"`` draws all curves on one diagram; ``"side_by_side"`` gives each
            curve its own column.
        title: figure title.

    Returns:
        The figure: top row the reliability diagram (marker area ~ bin weight, ECE in the
        legend), bottom row a histogram of the predictions (density, so that equal-count
        quantile bins of different widths read correctly).
    """
    named: Mapping[str, CurveInput] = (
        {"predictions": curves} if isinstance(curves, ReliabilityCurve) else curves
    )
    if not named:
        raise CrossentError("curves is empty; pass at least one named curve")
    resolved = {name: _as_curve(name, value, bins, strategy) for name, value in named.items()}
    if layout not in ("overlay", "side_by_side"):
        raise CrossentError(f'layout = {layout!r} is not "overlay" or "side_by_side"')
    columns = 1 if layout == "overlay" else len(resolved)
    fig = Figure(figsize=(4.6 * columns, 6.0), layout="constrained")
    grid = fig.add_gridspec(2, columns, height_ratios=[3, 1])
    panels = []
    for column in range(columns):
        top = fig.add_subplot(grid[0, column])
        bottom = fig.add_subplot(grid[1, column], sharex=top)
        top.plot([0, 1], [0, 1], linestyle="--", color="0.6", label="perfectly calibrated")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("observed frequency")
        bottom.set_xlabel("predicted probability")
        bottom.set_ylabel("density")
        panels.append((top, bottom))
    for i, (name, curve) in enumerate(resolved.items()):
        top, bottom = panels[0 if layout == "overlay" else i]
        if layout == "side_by_side":
            top.set_title(name)
        filled = curve.weight > 0
        total = float(curve.weight.sum())
        share = curve.weight / total if total > 0 else curve.weight
        color = _color(i)
        ece = curve.expected_calibration_error if total > 0 else float("nan")
        top.plot(
            curve.mean_predicted[filled],
            curve.observed[filled],
            marker="o",
            color=color,
            label=f"{name} (ECE {ece:.4f})",
        )
        widths = np.diff(curve.edges)
        density = np.divide(share, widths, out=np.zeros_like(share), where=widths > 0)
        bottom.bar(
            curve.edges[:-1],
            density,
            width=widths,
            align="edge",
            color=color,
            alpha=0.45 if len(resolved) > 1 and layout == "overlay" else 0.8,
            edgecolor=color,
            label=name,
        )
        top.legend(loc="upper left", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def _xy(value: SeriesInput) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, tuple) and len(value) == 2:
        return np.asarray(value[0], dtype=float), np.asarray(value[1], dtype=float)
    y = np.asarray(value, dtype=float)
    return np.arange(1, y.shape[0] + 1, dtype=float), y


def curves_figure(
    curves: Mapping[str, SeriesInput],
    *,
    xlabel: str = "epoch",
    ylabel: str = "loss",
    title: str | None = None,
    log_y: bool = False,
) -> Figure:
    """Named curves against epoch (training and validation loss, metrics per epoch).

    Args:
        curves: ``{"train": [0.9, 0.7, ...], "validation": (epochs, values), ...}``; a plain
            sequence is plotted against epochs 1, 2, ...; names containing "val" or "test"
            are drawn dashed so that train/validation pairs read at a glance.
        log_y: logarithmic y axis.
    """
    if not curves:
        raise CrossentError("curves is empty; pass at least one named curve")
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    axes = fig.add_subplot()
    _plot_curves(axes, curves, xlabel=xlabel, ylabel=ylabel, log_y=log_y)
    if title:
        axes.set_title(title)
    return fig


def _plot_curves(
    axes: Any, curves: Mapping[str, SeriesInput], *, xlabel: str, ylabel: str, log_y: bool
) -> None:
    """Draw named curves on one axis; validation/test curves (by name) are dashed."""
    for i, (name, value) in enumerate(curves.items()):
        x, y = _xy(value)
        dashed = any(word in name.lower() for word in ("val", "test"))
        axes.plot(x, y, linestyle="--" if dashed else "-", color=_color(i), label=name)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if log_y:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")


def bar_figure(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float] | ArrayLike],
    *,
    ylabel: str = "",
    title: str | None = None,
) -> Figure:
    """Grouped bars: one group per entry of ``groups``, one bar per series in each group.

    Example: per-class recall (``groups`` = class names) for each loss (``series`` =
    ``{"cross-entropy": [...], "focal": [...]}``, each with ``len(groups)`` values).
    """
    if not series:
        raise CrossentError("series is empty; pass at least one named series")
    fig = Figure(figsize=(max(6.4, 0.5 * len(groups) * len(series) + 2), 4.0), layout="constrained")
    axes = fig.add_subplot()
    positions = np.arange(len(groups), dtype=float)
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        heights = np.asarray(values, dtype=float)
        if heights.shape != (len(groups),):
            raise CrossentError(
                f"series[{name!r}] has {heights.size} values but there are {len(groups)} groups"
            )
        axes.bar(
            positions + (i - (len(series) - 1) / 2) * width,
            heights,
            width,
            label=name,
            color=_color(i),
        )
    axes.set_xticks(positions, list(groups), rotation=30 if len(groups) > 6 else 0)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    if title:
        axes.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (or the format of ``path``'s suffix), creating parent folders."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=dpi)
    return target


def _png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def format_cell(value: Any, float_format: str = ".4g") -> str:
    """A table cell as text: floats with ``float_format``, everything else ``str``."""
    if isinstance(value, (float, np.floating)):
        return format(float(value), float_format)
    return str(value)


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, float_format: str = ".4g"
) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned.

    >>> print(markdown_table(["loss", "bits"], [["ce", 0.5]]))
    | loss | bits |
    | :--- | ---: |
    | ce | 0.5 |
    """
    for number, row in enumerate(rows):
        if len(row) != len(headers):
            raise CrossentError(
                f"row {number} has {len(row)} cells but there are {len(headers)} headers"
            )

    numeric = [
        bool(rows) and all(isinstance(row[j], (int, float, np.number)) for row in rows)
        for j in range(len(headers))
    ]

    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(escape(str(h)) for h in headers) + " |",
        "| " + " | ".join("---:" if n else ":---" for n in numeric) + " |",
    ]
    lines += [
        "| " + " | ".join(escape(format_cell(cell, float_format)) for cell in row) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def html_table(table: Table, *, float_format: str = ".4g") -> str:
    """``table`` as an HTML ``<table>`` (cells escaped)."""
    parts = ["<table>"]
    if table.caption:
        parts.append(f"<caption>{html.escape(table.caption)}</caption>")
    parts.append(
        "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in table.headers) + "</tr>"
    )
    for row in table.rows:
        cells = []
        for cell in row:
            align = ' class="num"' if isinstance(cell, (int, float, np.number)) else ""
            cells.append(f"<td{align}>{html.escape(format_cell(cell, float_format))}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: .3rem .7rem; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3rem; }
img { max-width: 100%; }
"""


def _sections(sections: Sequence[SectionInput]) -> list[Section]:
    resolved = []
    for section in sections:
        if isinstance(section, Section):
            resolved.append(section)
        else:
            heading, blocks = section
            resolved.append(Section(heading, list(blocks)))
    return resolved


def write_html_report(
    path: str | Path, title: str, sections: Sequence[SectionInput], *, float_format: str = ".4g"
) -> Path:
    """Write one self-contained HTML file: figures and PNG files embedded as base64 data URIs.

    Args:
        path: the ``.html`` file to write (parent folders are created).
        title: page title and top heading.
        sections: :class:`Section` objects or ``(heading, blocks)`` pairs; see :class:`Section`.
    """
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in _sections(sections):
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                body.append(html_table(block, float_format=float_format))
            elif isinstance(block, Figure):
                data = base64.b64encode(_png_bytes(block)).decode("ascii")
                body.append(f'<img alt="figure" src="data:image/png;base64,{data}">')
            elif isinstance(block, Path):
                data = base64.b64encode(block.read_bytes()).decode("ascii")
                body.append(
                    f'<img alt="{html.escape(block.name)}" src="data:image/png;base64,{data}">'
                )
            elif isinstance(block, str):
                for paragraph in block.split("\n\n"):
                    if paragraph.strip():
                        body.append(f"<p>{html.escape(paragraph.strip())}</p>")
            else:
                raise CrossentError(
                    f"section {section.heading!r} has a {type(block).__name__} block; "
                    "expected str, Table, Figure or Path"
                )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


def write_markdown_report(
    path: str | Path, title: str, sections: Sequence[SectionInput], *, float_format: str = ".4g"
) -> Path:
    """Write a Markdown report; each figure is saved as ``<stem>_figN.png`` beside it and linked.

    Same ``sections`` as :func:`write_html_report`. PNG ``Path`` blocks are linked relative to
    the report when possible.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    figure_number = 0
    for section in _sections(sections):
        lines += [f"## {section.heading}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                if block.caption:
                    lines += [f"**{block.caption}**", ""]
                lines += [markdown_table(block.headers, block.rows, float_format=float_format), ""]
            elif isinstance(block, Figure):
                figure_number += 1
                image = save_figure(
                    block, target.with_name(f"{target.stem}_fig{figure_number}.png")
                )
                lines += [f"![figure {figure_number}]({image.name})", ""]
            elif isinstance(block, Path):
                try:
                    link = block.resolve().relative_to(target.parent.resolve()).as_posix()
                except ValueError:
                    link = block.resolve().as_posix()
                lines += [f"![{block.stem}]({link})", ""]
            elif isinstance(block, str):
                lines += [block.strip(), ""]
            else:
                raise CrossentError(
                    f"section {section.heading!r} has a {type(block).__name__} block; "
                    "expected str, Table, Figure or Path"
                )
    target.write_text("\n".join(lines), encoding="utf-8")
    return target


def curves_grid_figure(
    panels: Mapping[str, Mapping[str, SeriesInput]],
    *,
    columns: int = 3,
    xlabel: str = "epoch",
    ylabel: str = "loss",
    title: str | None = None,
    log_y: bool = False,
) -> Figure:
    """Small multiples: one panel of named curves per entry, each panel with its own y scale.

    For curves in different units that should not share an axis, e.g. the training and
    validation loss of each loss function in the loss lab:
    ``{"mse": {"train": [...], "validation": [...]}, "focal": {...}}``. Curves are drawn as in
    :func:`curves_figure` (names with "val" or "test" dashed); ``log_y`` puts every panel on a
    logarithmic y axis.
    """
    if not panels:
        raise CrossentError("panels is empty; pass at least one named panel")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise CrossentError(f"columns = {columns!r} must be a positive integer")
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)  # ceiling division
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    for number, (panel, curves) in enumerate(panels.items()):
        if not curves:
            raise CrossentError(f"panels[{panel!r}] is empty; pass at least one named curve")
        axes = fig.add_subplot(rows, columns, number + 1)
        _plot_curves(axes, curves, xlabel=xlabel, ylabel=ylabel, log_y=log_y)
        axes.set_title(panel)
    if title:
        fig.suptitle(title)
    return fig
