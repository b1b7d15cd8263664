"""Block reading of prediction files: values, and the file line of every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossent import io
from crossent.errors import CrossentError


def _read_all(path: Path, columns: list[str], **options):  # type: ignore[no-untyped-def]
    lines, values, problems, blank = [], {c: [] for c in columns}, [], 0
    for batch in io.read_batches(path, columns, float_columns=columns, **options):
        lines += batch.lines.tolist()
        for name in columns:
            values[name] += io.float_column(batch.columns[name]).values.tolist()
        problems += batch.problems
        blank += batch.blank_lines
    return lines, values, problems, blank


@pytest.mark.parametrize("block_bytes", [7, 20, 1 << 20])
def test_csv_rows_keep_their_file_line_across_blocks(tmp_path: Path, block_bytes: int) -> None:
    path = tmp_path / "p.csv"
    path.write_text("prob,label,note\n0.1,1,a\n0.2,0,b\n\n0.3,1,c\r\n0.4,0,d\n0.5,1,e")
    lines, values, problems, blank = _read_all(path, ["prob", "label"], block_bytes=block_bytes)
    assert lines == [2, 3, 5, 6, 7]
    assert values["prob"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert values["label"] == [1, 0, 1, 0, 1]
    assert problems == []
    assert blank == 1


def test_line_with_wrong_field_count_is_a_problem_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("prob,label\n0.1,1\n0.2,0,9\n0.3,1\n")
    lines, values, problems, _ = _read_all(path, ["prob", "label"])
    assert lines == [2, 4]
    assert values["prob"] == [0.1, 0.3]
    assert [(p.line, p.message) for p in problems] == [
        (3, "the line has 3 fields, expected 2: '0.2,0,9'")
    ]


def test_non_numbers_and_blanks_are_flagged_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text("prob\tlabel\n0.1\t1\nabc\t0\n\t1\n 2.5e-1 \t0\n")
    for batch in io.read_batches(path, ["prob"], float_columns=["prob"]):
        column = io.float_column(batch.columns["prob"])
        assert batch.lines.tolist() == [2, 3, 4, 5]
        assert column.not_number.tolist() == [False, True, False, False]
        assert column.missing.tolist() == [False, False, True, False]
        assert column.values[[0, 3]].tolist() == [0.1, 0.25]


def test_jsonl_lines_and_broken_records(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prob": 0.1, "label": 1}\n\n{"prob": 0.2}\n{oops\n{"prob": 0.4, "label": 0}\n'
    )
    lines, values, problems, _ = _read_all(path, ["prob", "label"])
    assert lines == [1, 3, 5]
    assert values["prob"] == [0.1, 0.2, 0.4]
    assert np.isnan(values["label"][1])
    assert [p.line for p in problems] == [4]


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"prob": [0.1, None, 0.3], "label": [1, 0, 1]}), path)
    lines, values, _, _ = _read_all(path, ["prob", "label"])
    assert lines == [1, 2, 3]
    assert values["label"] == [1.0, 0.0, 1.0]
    batch = next(io.read_batches(path, ["prob"]))
    assert batch.row_word == "row"
    assert io.float_column(batch.columns["prob"]).missing.tolist() == [False, True, False]


def test_read_columns_of_each_format(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('"prob","label"\n0.1,1\n')
    (tmp_path / "a.jsonl").write_text('{"p": 0.1, "y": 1}\n')
    assert io.read_columns(tmp_path / "a.csv") == ["prob", "label"]
    assert io.read_columns(tmp_path / "a.jsonl") == ["p", "y"]


def test_unknown_suffix_missing_file_and_missing_column_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CrossentError, match=r"unknown file type '\.xlsx'"):
        io.file_format(tmp_path / "a.xlsx")
    with pytest.raises(CrossentError, match="no such file"):
        io.read_columns(tmp_path / "nope.csv")
    (tmp_path / "a.csv").write_text("prob,label\n0.1,1\n")
    with pytest.raises(CrossentError, match="no column 'score'; the file has columns prob, label"):
        next(io.read_batches(tmp_path / "a.csv", ["score"]))
