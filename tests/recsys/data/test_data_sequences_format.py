"""SASRec's sequence files (``user item`` per line, line order = time order): --format sasrec."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossent.cli import app
from crossent.errors import DataFileError
from crossent.recsys.data.interactions import leave_last_out
from crossent.recsys.data.loaders import load_interactions, load_sequences


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_lines_become_watches_in_line_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "seq.txt", "5 30\n5 10\n9 10\n5 20\n9 40\n")
    watches = load_sequences(path)
    indptr, items = watches.sequences()
    per_user = {
        int(watches.user_ids[user]): watches.item_ids[items[indptr[user] : indptr[user + 1]]]
        for user in range(watches.n_users)
    }
    # each user's lines in file order, whatever ids they carry
    assert per_user[5].tolist() == [30, 10, 20]
    assert per_user[9].tolist() == [10, 40]


def test_the_last_line_of_a_user_is_the_test_watch(tmp_path: Path) -> None:
    path = _write(tmp_path / "seq.txt", "1 1\n1 2\n1 3\n1 4\n2 4\n2 3\n2 2\n")
    split = leave_last_out(load_sequences(path))
    item_ids = load_sequences(path).item_ids
    assert item_ids[split.test_target].tolist() == [4, 2]
    assert item_ids[split.valid_target].tolist() == [3, 3]


def test_auto_recognises_a_txt_file_of_pairs(tmp_path: Path) -> None:
    path = _write(tmp_path / "Video.txt", "1 7\n1 3\n2 7\n")
    auto = load_interactions(path)
    named = load_interactions(path, "sasrec")
    assert np.array_equal(auto.item, named.item) and np.array_equal(auto.user, named.user)


def test_a_line_with_three_fields_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "seq.txt", "1 7\n1 3\n2 7 9\n")
    with pytest.raises(DataFileError, match=r"seq\.txt.*line 3"):
        load_sequences(path)


def test_crossent_train_names_a_bad_line_in_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "seq.txt", "1 7\n1 3\n2\n")
    result = CliRunner().invoke(
        app, ["train", "--data", str(path), "--format", "sasrec", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert "line 3" in result.output and "Traceback" not in result.output


def test_amazon_video_matches_its_readme(amazon_video: Path) -> None:
    # the counts the data set's README states: 31,013 users, 23,715 items, 287,107 lines
    watches = load_interactions(amazon_video, "sasrec")
    assert (watches.n_users, watches.n_items, len(watches)) == (31_013, 23_715, 287_107)
    # leave-last-out tests every user with 3 or more lines, counted here from the text
    lines = Counter(line.split()[0] for line in amazon_video.read_text().splitlines())
    assert len(leave_last_out(watches).users("test")) == sum(n >= 3 for n in lines.values())
