"""`crossent score` end to end: numbers against scikit-learn, messages for bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from typer.testing import CliRunner

from crossent.cli import app
from crossent.errors import CrossentError
from crossent.scoring.columns import guess_columns
from crossent.scoring.files import Columns, FileScorer


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["score", *args])


def _binary_file(
    tmp_path: Path, n: int = 3000, seed: int = 0
) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prob = np.round(rng.uniform(size=n), 6)
    label = (rng.uniform(size=n) < prob).astype(int)
    path = tmp_path / "preds.csv"
    path.write_text(
        "label,prob\n" + "".join(f"{y},{p}\n" for y, p in zip(label, prob, strict=True))
    )
    return path, prob, label


def test_json_numbers_equal_sklearn(tmp_path: Path) -> None:
    path, prob, label = _binary_file(tmp_path)
    result = _invoke(str(path), "--json", "--base", "bits")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"] == 3000
    assert abs(payload["log_loss_nats"] - log_loss(label, prob)) < 1e-9
    assert abs(payload["log_loss"] - log_loss(label, prob) / np.log(2)) < 1e-9
    assert abs(payload["brier"] - brier_score_loss(label, prob)) < 1e-9
    assert abs(payload["roc_auc"] - roc_auc_score(label, prob)) <= payload["roc_auc_max_error"]
    assert "guessed --prob prob" in result.stderr
    assert "guessed --target label" in result.stderr


def test_table_plot_and_several_files(tmp_path: Path) -> None:
    path, prob, label = _binary_file(tmp_path)
    other = tmp_path / "more.parquet"
    pq.write_table(pa.table({"label": label[:100], "prob": prob[:100]}), other)
    plot = tmp_path / "out" / "reliability.png"
    result = _invoke(
        str(path), str(other), "--target", "label", "--prob", "prob", "--plot", str(plot)
    )
    assert result.exit_code == 0, result.output
    assert "log loss (nats)" in result.stdout
    assert "3,100" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_multiclass_probs_and_logits_with_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    target = rng.integers(0, 3, size=500)
    weight = rng.uniform(size=500)
    path = tmp_path / "multi.jsonl"
    with path.open("w") as handle:
        for i in range(500):
            record = {"y": int(target[i]), "w": float(weight[i])}
            record |= {f"z{c}": float(logits[i, c]) for c in range(3)}
            record |= {f"p{c}": float(probs[i, c]) for c in range(3)}
            handle.write(json.dumps(record) + "\n")
    expected = log_loss(target, probs, sample_weight=weight, labels=range(3))
    for kind, columns in (("--probs", "p0,p1,p2"), ("--logits", "z0,z1,z2")):
        result = _invoke(str(path), "--target", "y", kind, columns, "--weight", "w", "--json")
        assert result.exit_code == 0, result.output
        assert abs(json.loads(result.stdout)["log_loss"] - expected) < 1e-9


def test_string_labels_declared_with_labels_option(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("outcome,prob\nspam,0.9\nham,0.2\nspam,0.6\n")
    result = _invoke(str(path), "--labels", "ham,spam", "--json")
    assert result.exit_code == 0, result.output
    expected = log_loss(["spam", "ham", "spam"], [0.9, 0.2, 0.6])
    assert abs(json.loads(result.stdout)["log_loss"] - expected) < 1e-12


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("label,prob\n1,0.5\n0,abc\n", r"p.csv line 3, column 'prob': value 'abc' is not a number"),
        ("label,prob\n1,0.5\n0,\n", r"p.csv line 3, column 'prob': missing value"),
        ("label,prob\n1,0.5\n0,1.5\n", r"p.csv line 3, column 'prob': probability 1.5 is outside"),
        ("label,prob\n1,0.5\n\n2,0.5\n", r"p.csv line 4, column 'label': label 2 is not one of"),
        ("label,prob\n1,0.5\n1,0.5,7\n", r"p.csv line 3: the line has 3 fields, expected 2"),
    ],
)
def test_bad_row_stops_with_file_line_and_column(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(content)
    result = _invoke(str(path))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()[-1]) > 0
    assert "Traceback" not in result.output
    import re

    assert re.search(message, " ".join(result.stderr.split())), result.stderr


def test_skip_invalid_reports_count_and_first_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("label,prob\n1,0.9\n0,abc\n1,0.8\n3,0.5\n0,0.1\n0,-1\n")
    result = _invoke(str(path), "--skip-invalid", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"] == 3
    assert payload["skipped"] == 3
    assert [example.split(",")[0] for example in payload["skipped_examples"]] == [
        f"{path} line 3",
        f"{path} line 5",
        f"{path} line 7",
    ]
    assert abs(payload["log_loss"] - log_loss([1, 1, 0], [0.9, 0.8, 0.1])) < 1e-12
    assert "skipped 3 invalid rows" in result.stderr


def test_parquet_bad_row_is_named_by_row_number(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"label": [1, 0], "prob": [0.5, 2.0]}), path)
    result = _invoke(str(path))
    assert result.exit_code == 2
    assert "row 2: probability 2 is outside [0, 1]" in " ".join(result.stderr.split())


def test_ambiguous_columns_ask_for_an_option(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("label,prob,score\n1,0.5,0.3\n")
    result = _invoke(str(path))
    assert result.exit_code == 2
    assert "cannot guess the prob column: prob, score all fit; pass --prob" in result.stderr


def test_guess_columns_finds_class_columns_and_weight() -> None:
    columns, guesses = guess_columns(["y", "prob_0", "prob_1", "prob_2", "weight"])
    assert columns == Columns("y", probs=("prob_0", "prob_1", "prob_2"), weight="weight")
    assert guesses == [
        "guessed --probs prob_0,prob_1,prob_2",
        "guessed --target y",
        "guessed --weight weight",
    ]


def test_file_scorer_blocks_equal_one_pass(tmp_path: Path) -> None:
    path, prob, label = _binary_file(tmp_path, n=2000, seed=3)
    small = FileScorer(Columns("label", prob="prob"), block_bytes=64)
    small.add_file(path)
    assert small.rows == 2000
    assert abs(small.result().log_loss - log_loss(label, prob)) < 1e-9


def test_unknown_base_and_empty_result_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("label,prob\n1,abc\n")
    assert "base" in _invoke(str(path), "--base", "decibels").stderr
    scorer = FileScorer(Columns("label", prob="prob"), skip_invalid=True)
    scorer.add_file(path)
    with pytest.raises(CrossentError, match=r"no valid rows to score \(1 invalid rows skipped\)"):
        scorer.result()


def test_rows_off_the_simplex_are_counted_with_the_one_tolerance(tmp_path: Path) -> None:
    # |sum - 1| <= 1e-3 (crossent._validation.masks.sum_tolerance for float64) is on the simplex
    path = tmp_path / "p.csv"
    path.write_text("y,p0,p1,p2\n0,0.5,0.3,0.2005\n1,0.5,0.3,0.21\n2,0.2,0.3,0.5\n")
    result = _invoke(str(path), "--target", "y", "--probs", "p0,p1,p2", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["unnormalised_rows"] == 1
    assert payload["first_unnormalised"].endswith("line 3: probabilities sum to 1.01")
