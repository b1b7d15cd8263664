"""Figures and self-contained reports."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

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
    assert isinstance(report.curves_figure({"a": [1]}), Figure)
