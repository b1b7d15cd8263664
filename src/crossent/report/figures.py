"""Figures: reliability diagrams, curves per epoch, grouped bars.

Figures are plain :class:`matplotlib.figure.Figure` objects drawn off-screen (no pyplot, no
global state, no display needed), so any process can build them.

**One ECE.** Every ECE a report shows, in a table or in a figure's legend, is
:func:`crossent.metrics.expected_calibration_error` with equal-width bins, labelled with its bin
count by :func:`ece_label`. A reliability diagram may draw its points in other bins (equal-mass
bins read better when predictions crowd in one corner); its legend's ECE still uses equal-width
bins, so the figure and the table beside it show the same number.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from crossent._validation.choices import BinStrategy
from crossent.errors import CrossentError
from crossent.metrics.calibration import (
    ReliabilityCurve,
    expected_calibration_error,
    reliability_curve,
)

CurveInput = ReliabilityCurve | tuple[ArrayLike, ArrayLike]
SeriesInput = Sequence[float] | ArrayLike | tuple[ArrayLike, ArrayLike]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
_BINNING = {"uniform": "equal-width", "quantile": "equal-mass"}


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def binning_text(bins: int, strategy: BinStrategy = "uniform") -> str:
    """``"15 equal-width bins"`` (``"uniform"``) or ``"15 equal-mass bins"`` (``"quantile"``)."""
    return f"{bins} {_BINNING[strategy]} bins"


def ece_label(bins: int, strategy: BinStrategy = "uniform") -> str:
    """How an ECE was computed, for table headers and legends.

    >>> ece_label(15)
    'ECE, 15 equal-width bins'
    """
    return f"ECE, {binning_text(bins, strategy)}"


def _curve_binning(curve: ReliabilityCurve) -> str:
    """A curve's own bins as text: equal-width when its edges are ``linspace(0, 1)``."""
    bins = curve.edges.shape[0] - 1
    uniform = np.allclose(curve.edges, np.linspace(0.0, 1.0, bins + 1))
    return binning_text(bins, "uniform" if uniform else "quantile")


def _resolve(
    name: str, value: CurveInput, bins: int, strategy: BinStrategy, ece_bins: int
) -> tuple[ReliabilityCurve, float, str]:
    """The curve to draw, its ECE and the ECE's bins as text.

    A ``(probs, target)`` pair gets the ECE over ``ece_bins`` equal-width bins; a ready curve
    carries its own bins, so its ECE is the curve's and is labelled with them.
    """
    if isinstance(value, ReliabilityCurve):
        total = float(value.weight.sum())
        ece = value.expected_calibration_error if total > 0 else float("nan")
        return value, ece, _curve_binning(value)
    if isinstance(value, tuple) and len(value) == 2:
        probs, target = value
        curve = reliability_curve(probs, target, bins=bins, strategy=strategy)
        ece = expected_calibration_error(probs, target, bins=ece_bins, strategy="uniform")
        return curve, ece, binning_text(ece_bins)
    raise CrossentError(
        f"curves[{name!r}] is a {type(value).__name__}; expected a ReliabilityCurve "
        "or a (probs, target) pair"
    )


def _reliability_panels(
    fig: Figure, columns: int, points: str
) -> list[tuple[Any, Any]]:
    """(diagram, histogram) axes per column: the diagonal, unit limits and axis labels."""
    grid = fig.add_gridspec(2, columns, height_ratios=[3, 1])
    panels = []
    for column in range(columns):
        top = fig.add_subplot(grid[0, column])
        bottom = fig.add_subplot(grid[1, column], sharex=top)
        top.plot([0, 1], [0, 1], linestyle="--", color="0.6", label="perfectly calibrated")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("observed frequency")
        bottom.set_xlabel(f"predicted probability (points: {points})")
        bottom.set_ylabel("density")
        panels.append((top, bottom))
    return panels


def reliability_figure(
    curves: ReliabilityCurve | Mapping[str, CurveInput],
    *,
    bins: int = 10,
    strategy: BinStrategy = "uniform",
    ece_bins: int | None = None,
    layout: Literal["overlay", "side_by_side"] = "overlay",
    title: str | None = None,
) -> Figure:
    """Reliability diagram (observed vs predicted, with the diagonal) above a histogram.

    Args:
        curves: one :class:`~crossent.metrics.ReliabilityCurve`, or named curves
            ``{"model": curve_or_(probs, target), ...}``. A ``(probs, target)`` pair is binned
            here with ``bins``/``strategy`` (see :func:`crossent.metrics.reliability_curve`).
        bins, strategy: the bins of the drawn points and of the histogram.
        ece_bins: equal-width bins of the ECE in the legend, for ``(probs, target)`` pairs
            (default ``bins``); pass the bins of the table the figure goes with. A ready
            curve's ECE uses the curve's own bins.
        layout: ``"overlay"`` draws all curves on one diagram; ``"side_by_side"`` gives each
            curve its own column.
        title: figure title.

    Returns:
        The figure: top row the reliability diagram (the ECE and its binning in the legend),
        bottom row a histogram of the predictions (density, so that equal-mass bins of
        different widths read correctly).
    """
    named: Mapping[str, CurveInput] = (
        {"predictions": curves} if isinstance(curves, ReliabilityCurve) else curves
    )
    if not named:
        raise CrossentError("curves is empty; pass at least one named curve")
    if layout not in ("overlay", "side_by_side"):
        raise CrossentError(f'layout = {layout!r} is not "overlay" or "side_by_side"')
    ece_bins = bins if ece_bins is None else ece_bins
    resolved = {
        name: _resolve(name, value, bins, strategy, ece_bins) for name, value in named.items()
    }
    points = {_curve_binning(curve) for curve, _, _ in resolved.values()}
    binnings = {binning for _, _, binning in resolved.values()}
    shared = len(binnings) == 1 or layout == "side_by_side"
    columns = 1 if layout == "overlay" else len(resolved)
    fig = Figure(figsize=(4.6 * columns, 6.0), layout="constrained")
    panels = _reliability_panels(fig, columns, points.pop() if len(points) == 1 else "binned")
    for i, (name, (curve, ece, binning)) in enumerate(resolved.items()):
        top, bottom = panels[0 if layout == "overlay" else i]
        if layout == "side_by_side":
            top.set_title(name)
        label = f"{name} (ECE {ece:.4f})" if shared else f"{name} (ECE {ece:.4f}, {binning})"
        alpha = 0.45 if len(resolved) > 1 and layout == "overlay" else 0.8
        _draw_curve(top, bottom, curve, label, name, _color(i), alpha=alpha)
        legend_title = f"ECE over {binning}" if shared else None
        top.legend(loc="upper left", fontsize="small", title=legend_title, title_fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def _draw_curve(
    top: Any,
    bottom: Any,
    curve: ReliabilityCurve,
    label: str,
    name: str,
    color: str,
    *,
    alpha: float,
) -> None:
    """One curve's points on the diagram and its predictions' density on the histogram."""
    filled = curve.weight > 0
    total = float(curve.weight.sum())
    share = curve.weight / total if total > 0 else curve.weight
    top.plot(
        curve.mean_predicted[filled], curve.observed[filled], marker="o", color=color, label=label
    )
    widths = np.diff(curve.edges)
    density = np.divide(share, widths, out=np.zeros_like(share), where=widths > 0)
    bottom.bar(
        curve.edges[:-1],
        density,
        width=widths,
        align="edge",
        color=color,
        alpha=alpha,
        edgecolor=color,
        label=name,
    )


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


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
