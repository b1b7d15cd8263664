"""Figures and self-contained reports: what people look at after a run.

:mod:`.figures` draws matplotlib figures off-screen (reliability diagrams, curves per epoch,
grouped bars) and holds the one ECE label of every report; :mod:`.documents` writes them, with
tables and text, into one HTML file or a Markdown file with PNGs beside it.

Typical use::

    from crossent import report
    fig = report.reliability_figure({"model": (probs, target), "EASE": (ease_probs, target)})
    report.write_html_report("out/report.html", "Watch model", [
        report.Section("Calibration", ["Predicted vs observed watch rate.", fig]),
        report.Section("Metrics", [report.Table(["metric", "value"], [["log loss", 0.41]])]),
    ])
"""

from crossent.report.documents import (
    Section,
    SectionInput,
    Table,
    format_cell,
    html_table,
    markdown_table,
    write_html_report,
    write_markdown_report,
)
from crossent.report.figures import (
    CurveInput,
    SeriesInput,
    bar_figure,
    binning_text,
    curves_figure,
    curves_grid_figure,
    ece_label,
    png_bytes,
    reliability_figure,
    save_figure,
)

__all__ = [
    "CurveInput",
    "Section",
    "SectionInput",
    "SeriesInput",
    "Table",
    "bar_figure",
    "binning_text",
    "curves_figure",
    "curves_grid_figure",
    "ece_label",
    "format_cell",
    "html_table",
    "markdown_table",
    "png_bytes",
    "reliability_figure",
    "save_figure",
    "write_html_report",
    "write_markdown_report",
]
