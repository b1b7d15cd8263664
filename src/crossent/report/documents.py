"""Self-contained reports: tables and figures written to one HTML file or to Markdown.

HTML embeds every image as a base64 ``data:`` URI (one file to mail or open); Markdown saves
each figure beside itself and links it. A report is a list of :class:`Section`, each a heading
and blocks: paragraphs, :class:`Table`, matplotlib figures, or PNG files.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from crossent.errors import CrossentError
from crossent.report.figures import png_bytes, save_figure


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
                data = base64.b64encode(png_bytes(block)).decode("ascii")
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
