"""`crossent score` on compressed files, word labels and partitioned folders, against sklearn."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from typer.testing import CliRunner

from crossent.cli import app


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["score", *args])


def _json(*args: str) -> dict:  # type: ignore[type-arg]
    result = _invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _words(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(seed)
    prob = np.round(rng.uniform(0.01, 0.99, size=n), 4)
    spam = rng.uniform(size=n) < prob
    text = "outcome,prob\n" + "".join(
        f"{'spam' if s else 'ham'},{p}\n" for s, p in zip(spam, prob, strict=True)
    )
    return prob, np.where(spam, "spam", "ham"), text


@pytest.mark.parametrize(("suffix", "codec"), [("gz", "gzip"), ("zst", "zstd"), ("bz2", "bz2")])
def test_compressed_file_with_word_labels_equals_sklearn(
    tmp_path: Path, suffix: str, codec: str
) -> None:
    prob, words, text = _words()
    path = tmp_path / f"preds.csv.{suffix}"
    with pa.CompressedOutputStream(str(path), codec) as out:
        out.write(text.encode())
    payload = _json(str(path), "--positive", "spam")
    # sklearn sorts the labels: ham < spam, so prob is P(spam)
    assert payload["rows"] == len(prob)
    assert abs(payload["log_loss"] - log_loss(words, prob)) < 1e-12
    auc = roc_auc_score(words == "spam", prob)
    assert abs(payload["roc_auc"] - auc) <= payload["roc_auc_max_error"]
    assert payload["labels"] == "the positive 'spam' and the negative 'ham' (the first other value)"


def test_unknown_word_label_names_file_line_column_and_known_labels(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("outcome,prob\nspam,0.9\nham,0.2\n\nmaybe,0.5\nham,0.1\n")
    result = _invoke(str(path), "--positive", "spam")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert re.search(
        r"p.csv line 5, column 'outcome': label 'maybe' is not one of the known labels the "
        r"positive 'spam' and the negative 'ham'",
        message,
    ), message
    payload = _json(str(path), "--positive", "spam", "--skip-invalid")
    assert payload["rows"] == 3 and payload["skipped"] == 1
    assert abs(payload["log_loss"] - log_loss(["spam", "ham", "ham"], [0.9, 0.2, 0.1])) < 1e-12


def test_word_target_without_declaration_suggests_positive(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("label,prob\nyes,0.9\nno,0.2\n")
    result = _invoke(str(path))
    assert result.exit_code == 2
    assert "label 'yes' is not one of the known labels 0, 1 (pass --labels NEG,POS or " in (
        " ".join(result.stderr.split())
    )


def test_multiclass_words_map_to_probability_columns_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    names = ["cat", "dog", "bird"]
    logits = rng.normal(size=(400, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    target = rng.integers(0, 3, size=400)
    lines = [
        f"{names[t]},{p[0]:.17g},{p[1]:.17g},{p[2]:.17g}\n"
        for t, p in zip(target, probs, strict=True)
    ]
    path = tmp_path / "animals.tsv.gz"
    with pa.CompressedOutputStream(str(path), "gzip") as out:
        out.write(("y,cat,dog,bird\n" + "".join(lines)).replace(",", "\t").encode())
    payload = _json(str(path), "--target", "y", "--probs", "cat,dog,bird")
    assert abs(payload["log_loss"] - log_loss(target, probs, labels=[0, 1, 2])) < 1e-12
    # the same file with an unknown animal, skipped and counted
    bad = tmp_path / "bad.csv"
    bad.write_text("y,cat,dog,bird\ncat,0.5,0.3,0.2\nfish,0.1,0.1,0.8\n")
    message = " ".join(_invoke(str(bad), "--target", "y", "--probs", "cat,dog,bird").stderr.split())
    assert "bad.csv line 3, column 'y': label 'fish' is not one of the known labels 0 or cat, " in (
        message
    )


def test_partitioned_folder_and_glob_give_partition_columns_to_by(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = {}
    for day, skew in (("2026-11-01", 0.0), ("2026-11-02", 0.2)):
        prob = rng.uniform(0.05, 0.95, size=300)
        label = (rng.uniform(size=300) < np.clip(prob + skew, 0, 1)).astype(int)
        folder = tmp_path / "preds" / f"date={day}"
        folder.mkdir(parents=True)
        pq.write_table(
            pa.table({"label": label[:150], "prob": prob[:150]}), folder / "part-0.parquet"
        )
        pq.write_table(
            pa.table({"label": label[150:], "prob": prob[150:]}), folder / "part-1.parquet"
        )
        frames[day] = (label, prob)
    (tmp_path / "preds" / "_SUCCESS").write_text("")
    for given in (str(tmp_path / "preds"), str(tmp_path / "preds" / "date=*" / "part-*.parquet")):
        payload = _json(given, "--by", "date")
        assert payload["rows"] == 600
        for segment in payload["segments"]:
            label, prob = frames[segment["segment"]["date"]]
            assert abs(segment["log_loss_nats"] - log_loss(label, prob)) < 1e-12


def test_bad_row_in_a_partition_names_its_file_and_row_group(tmp_path: Path) -> None:
    folder = tmp_path / "preds" / "date=2026-11-01"
    folder.mkdir(parents=True)
    table = pa.table({"label": [1, 0, 1, 0], "prob": [0.5, 0.5, 0.5, 1.5]})
    pq.write_table(table, folder / "part-0.parquet", row_group_size=2)
    result = _invoke(str(tmp_path / "preds"))
    assert result.exit_code == 2
    assert re.search(
        r"part-0.parquet, column 'prob': row group 1, row 4: probability 1.5 is outside",
        " ".join(result.stderr.split()),
    ), result.stderr
