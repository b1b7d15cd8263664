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


@pytest.mark.parametrize(
    ("suffix", "codec"), [("gz", "gzip"), ("bz2", "bz2"), ("zst", "zstd"), ("lz4", "lz4")]
)
def test_compressed_files_read_like_the_plain_file(tmp_path: Path, suffix: str, codec: str) -> None:
    text = "prob,label\n0.1,1\n\n0.2,0\n" + "".join(f"0.{i % 9},{i % 2}\n" for i in range(500))
    plain = tmp_path / "p.csv"
    plain.write_text(text)
    packed = tmp_path / f"p.csv.{suffix}"
    with pa.CompressedOutputStream(str(packed), codec) as out:
        out.write(text.encode())
    assert io.file_format(packed) == "csv"
    assert io.read_columns(packed) == ["prob", "label"]
    assert _read_all(packed, ["prob", "label"], block_bytes=64) == _read_all(
        plain, ["prob", "label"]
    )


def test_compressed_parquet_and_unknown_inner_type_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CrossentError, match="Parquet compresses inside the file"):
        io.file_format(tmp_path / "p.parquet.gz")
    with pytest.raises(CrossentError, match=r"unknown file type '\.txt\.gz'"):
        io.file_format(tmp_path / "p.txt.gz")


@pytest.mark.parametrize("block_bytes", [16, 1 << 20])
def test_one_missing_value_rule_in_fast_and_text_paths(tmp_path: Path, block_bytes: int) -> None:
    # the block with "abc" is re-read as text; both paths must agree on what is missing
    path = tmp_path / "p.csv"
    path.write_text("prob\n0.5\nnan\nNA\n n/a \nNULL\nNone\n\nabc\ninf\n")
    missing, not_number, values = [], [], []
    for batch in io.read_batches(path, ["prob"], float_columns=["prob"], block_bytes=block_bytes):
        column = io.float_column(batch.columns["prob"])
        missing += column.missing.tolist()
        not_number += column.not_number.tolist()
        values += column.values.tolist()
    assert missing == [False, True, True, True, True, True, False, False]
    assert not_number == [False] * 6 + [True, False]
    assert values[0] == 0.5 and values[-1] == np.inf
    assert [io.is_missing_text(t) for t in ("", " NaN ", "N/A", "none", "0", "nil")] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]


def test_parquet_float_nan_is_missing_and_row_groups_are_named(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"prob": [0.1, float("nan"), 0.3, 0.4]}), path, row_group_size=2)
    batches = list(io.read_batches(path, ["prob"]))
    assert [batch.where for batch in batches] == ["row group 0", "row group 1"]
    assert [batch.lines.tolist() for batch in batches] == [[1, 2], [3, 4]]
    assert io.float_column(batches[0].columns["prob"]).missing.tolist() == [False, True]


def test_text_options_read_any_separator_and_headerless_files(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::4.5\n\n2::20::3\n")
    options = io.TextOptions("::", names=["user", "item", "rating"], header=False)
    table = io.read_table(path, ["user", "rating"], float_columns=["rating"], text=options)
    assert table.lines.tolist() == [1, 3]
    assert table.columns["rating"].to_pylist() == [4.5, 3.0]
    assert table.columns["user"].to_pylist() == [1, 2]


def test_folders_and_globs_expand_with_hive_partitions(tmp_path: Path) -> None:
    for day in ("2026-11-01", "2026-11-02"):
        folder = tmp_path / "preds" / f"date={day}" / "country=fr"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"prob": [0.5]}), folder / "part-0.parquet")
    (tmp_path / "preds" / "_SUCCESS").write_text("")
    (tmp_path / "preds" / "README.md").write_text("not data")
    sources = io.expand([tmp_path / "preds"])
    assert [s.partition for s in sources] == [
        {"date": "2026-11-01", "country": "fr"},
        {"date": "2026-11-02", "country": "fr"},
    ]
    pattern = str(tmp_path / "preds" / "date=*" / "*" / "part-*.parquet")
    assert [s.path for s in io.expand([pattern])] == [s.path for s in sources]
    assert io.source_columns(sources[0]) == ["prob", "date", "country"]
    batch = next(io.read_batches(sources[1].path, ["prob", "date"], constants=sources[1].partition))
    assert batch.columns["date"].to_pylist() == ["2026-11-02"]
    with pytest.raises(CrossentError, match="no file matches this pattern"):
        io.expand([str(tmp_path / "nothing-*.csv")])
    with pytest.raises(CrossentError, match=r"nope\.csv: no such file"):
        io.expand([tmp_path / "nope.csv"])


def test_one_column_guesser_ignores_case_and_refuses_two_candidates() -> None:
    assert io.pick_column("user", ["user_id", "userId"], ["UserId", "movie"]) == "UserId"
    assert io.pick_column("user", ["user_id"], ["movie"]) is None
    with pytest.raises(
        CrossentError, match="cannot guess the rating column: rating, score all fit"
    ):
        io.pick_column("rating", ["rating", "score"], ["score", "rating"])
