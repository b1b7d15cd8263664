"""Figures and self-contained reports."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from crossent import report
from crossent.errors import CrossentError
from crossent.metrics import reliability_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _probs_and_target(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.uniform(size=500)
    return probs, (rng.uniform(size=500) < probs).astype(int)


@pytest.mark.parametrize("layout", ["overlay", "side_by_side"])
def test_reliability_figure_draws_diagonal_and_histogram_per_curve(layout: str) -> None:
    probs, target = _probs_and_target()
    curves = {"model": (probs, target), "squared": reliability_curve(probs**2, target)}
    fig = report.reliability_figure(curves, layout=layout, title="t")  # type: ignore[arg-type]
    columns = 1 if layout == "overlay" else 2
    assert len(fig.axes) == 2 * columns
    top = fig.axes[0]
    diagonal = top.lines[0]
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]
    labels = [label for axes in fig.axes for label in axes.get_legend_handles_labels()[1]]
    assert any(label.startswith("model (ECE") for label in labels)


def test_reliability_figure_rejects_bad_curve() -> None:
    with pytest.raises(CrossentError, match=r"curves\['x'\] is a str"):
        report.reliability_figure({"x": "nope"})  # type: ignore[dict-item]
    with pytest.raises(CrossentError, match="layout = 'grid'"):
        report.reliability_figure({"x": _probs_and_target()}, layout="grid")  # type: ignore[arg-type]


def test_curves_and_bar_figures() -> None:
    fig = report.curves_figure(
        {"train": [1.0, 0.8, 0.7], "validation": ([1, 2, 3], [1.1, 0.9, 0.9])}
    )
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == ["train", "validation"]
    assert lines[1].get_linestyle() == "--"
    bars = report.bar_figure(["a", "b"], {"ce": [0.5, 0.6], "focal": [0.7, 0.4]}, ylabel="recall")
    assert len(bars.axes[0].patches) == 4
    with pytest.raises(CrossentError, match=r"series\['ce'\] has 1 values but there are 2 groups"):
        report.bar_figure(["a", "b"], {"ce": [0.5]})


def test_save_figure_creates_folders(tmp_path: Path) -> None:
    path = report.save_figure(report.curves_figure({"train": [1, 2]}), tmp_path / "a" / "b.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_markdown_table_escapes_and_aligns() -> None:
    text = report.markdown_table(["loss", "bits"], [["a|b", 0.123456], ["c", 2]])
    assert text.splitlines() == [
        "| loss | bits |",
        "| :--- | ---: |",
        "| a\\|b | 0.1235 |",
        "| c | 2 |",
    ]
    with pytest.raises(CrossentError, match="row 0 has 1 cells but there are 2 headers"):
        report.markdown_table(["a", "b"], [[1]])


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    probs, target = _probs_and_target()
    png = report.save_figure(report.curves_figure({"train": [1, 2]}), tmp_path / "c.png")
    path = report.write_html_report(
        tmp_path / "out" / "report.html",
        "Title <&>",
        [
            report.Section(
                "Calibration",
                ["first\n\nsecond", report.reliability_figure({"m": (probs, target)})],
            ),
            ("Files", [png, report.Table(["metric", "value"], [["log loss", 0.5]], caption="cap")]),
        ],
    )
    html = path.read_text()
    assert "<title>Title &lt;&amp;&gt;</title>" in html
    assert html.count("<p>") == 2
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 2
    assert all(base64.b64decode(data)[:8] == PNG_MAGIC for data in images)
    assert '<td class="num">0.5</td>' in html
    assert 'src="http' not in html and "<script" not in html


def test_markdown_report_saves_figures_beside_it(tmp_path: Path) -> None:
    path = report.write_markdown_report(
        tmp_path / "lab.md",
        "Lab",
        [
            report.Section(
                "Curves", [report.curves_figure({"train": [1, 2]}), report.Table(["a"], [[1.0]])]
            )
        ],
    )
    text = path.read_text()
    assert text.startswith("# Lab\n")
    assert "![figure 1](lab_fig1.png)" in text
    assert (tmp_path / "lab_fig1.png").read_bytes()[:8] == PNG_MAGIC


def test_unknown_block_type_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CrossentError, match="has a int block"):
        report.write_html_report(tmp_path / "r.html", "t", [("s", [3])])  # type: ignore[list-item]


def test_curves_figure_plots_sequences_against_epochs_from_1_and_can_use_a_log_axis() -> None:
    fig = report.curves_figure({"a": [3.0, 1.0]}, xlabel="step", ylabel="bits", log_y=True)
    axes = fig.axes[0]
    assert list(axes.lines[0].get_xdata()) == [1.0, 2.0]
    assert list(axes.lines[0].get_ydata()) == [3.0, 1.0]
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_yscale()) == ("step", "bits", "log")


def test_curves_grid_figure_draws_one_titled_panel_per_entry() -> None:
    fig = report.curves_grid_figure(
        {"mse": {"train": [1, 0.5]}, "focal": {"train": [2, 1], "validation": [2, 2]}}, columns=3
    )
    assert [axes.get_title() for axes in fig.axes] == ["mse", "focal"]
    assert [len(axes.lines) for axes in fig.axes] == [1, 2]
    with pytest.raises(CrossentError, match=r"panels\['x'\] is empty"):
        report.curves_grid_figure({"x": {}})


def _ece_from_definition(probs: np.ndarray, target: np.ndarray, edges: np.ndarray) -> float:
    """sum_b (n_b / N) |mean p_b - mean y_b|; a value on an inner edge goes to the lower bin."""
    which = np.searchsorted(edges[1:-1], probs, side="left")
    total = 0.0
    for b in range(len(edges) - 1):
        members = which == b
        if members.any():
            total += members.mean() * abs(probs[members].mean() - target[members].mean())
    return float(total)


def test_reliability_legend_shows_the_equal_width_ece_of_the_table_whatever_the_points_bins() -> (
    None
):
    rng = np.random.default_rng(3)
    probs = rng.beta(1.0, 6.0, size=4000)  # crowded near 0, as watch probabilities are
    target = (rng.uniform(size=4000) < np.clip(probs * 1.3, 0, 1)).astype(int)
    equal_width = _ece_from_definition(probs, target, np.linspace(0, 1, 16))
    equal_mass = _ece_from_definition(probs, target, np.percentile(probs, np.linspace(0, 100, 16)))
    assert f"{equal_width:.4f}" != f"{equal_mass:.4f}"  # the data tell the two binnings apart
    fig = report.reliability_figure(
        {"model": (probs, target)}, bins=15, strategy="quantile", ece_bins=15
    )
    legend = fig.axes[0].get_legend()
    assert legend.get_title().get_text() == "ECE over 15 equal-width bins"
    assert [text.get_text() for text in legend.get_texts()][1] == f"model (ECE {equal_width:.4f})"
    assert fig.axes[1].get_xlabel() == "predicted probability (points: 15 equal-mass bins)"


def test_reliability_legend_names_each_curves_bins_when_they_differ() -> None:
    probs, target = _probs_and_target()
    quantile = reliability_curve(probs, target, bins=5, strategy="quantile")
    fig = report.reliability_figure({"pair": (probs, target), "ready": quantile}, bins=10)
    legend = fig.axes[0].get_legend()
    labels = [text.get_text() for text in legend.get_texts()]
    edges = np.percentile(probs, np.linspace(0, 100, 6))
    assert labels[1] == (
        f"pair (ECE {_ece_from_definition(probs, target, np.linspace(0, 1, 11)):.4f}, "
        "10 equal-width bins)"
    )
    assert labels[2] == (
        f"ready (ECE {_ece_from_definition(probs, target, edges):.4f}, 5 equal-mass bins)"
    )


def test_ece_label_names_the_bins() -> None:
    assert report.ece_label(15) == "ECE, 15 equal-width bins"
    assert report.ece_label(10, "quantile") == "ECE, 10 equal-mass bins"
