"""`crossent score --by`: every segment's numbers against scikit-learn and NumPy formulas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from typer.testing import CliRunner

from crossent.cli import app


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["score", *args])


def _ece(prob: np.ndarray, label: np.ndarray, bins: int) -> float:
    """Expected calibration error from its definition: uniform bins, right-closed edges."""
    index = np.clip(np.ceil(prob * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += inside.sum() * abs(prob[inside].mean() - label[inside].mean())
    return total / prob.shape[0]


@pytest.fixture
def segmented(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 6000
    country = rng.choice(["fr", "de", "us", "jp"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    device = rng.choice(["ios", "web"], size=n)
    prob = np.round(rng.beta(1.0, 3.0, size=n), 6)
    bias = np.where(country == "us", 0.15, 0.0)  # one miscalibrated segment
    label = (rng.uniform(size=n) < np.clip(prob + bias, 0, 1)).astype(int)
    path = tmp_path / "preds.csv"
    body = "".join(
        f"{y},{p},{c},{d}\n" for y, p, c, d in zip(label, prob, country, device, strict=True)
    )
    path.write_text("label,prob,country,device\n" + body)
    return path, prob, label, country, device


def test_every_segment_equals_sklearn_on_its_rows(segmented) -> None:  # type: ignore[no-untyped-def]
    path, prob, label, country, device = segmented
    result = _invoke(str(path), "--by", "country", "--by", "device", "--bins", "10", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["segments"]) == 8
    assert [s["rows"] for s in payload["segments"]] == sorted(
        (s["rows"] for s in payload["segments"]), reverse=True
    )
    for segment in payload["segments"]:
        rows = (country == segment["segment"]["country"]) & (device == segment["segment"]["device"])
        p, y = prob[rows], label[rows]
        assert segment["rows"] == rows.sum()
        assert abs(segment["base_rate"] - y.mean()) < 1e-12
        assert abs(segment["log_loss_nats"] - log_loss(y, p)) < 1e-12
        assert abs(segment["log_loss_bits"] - log_loss(y, p) / np.log(2)) < 1e-12
        base = y.mean()
        prior_entropy = -(base * np.log(base) + (1 - base) * np.log(1 - base))
        assert abs(segment["normalized_entropy"] - log_loss(y, p) / prior_entropy) < 1e-12
        assert abs(segment["ece"] - _ece(p, y, 10)) < 1e-12
        assert abs(segment["calibration_ratio"] - p.sum() / y.sum()) < 1e-12
        error = roc_auc_score(y, p) - segment["roc_auc"]
        assert abs(error) <= segment["roc_auc_max_error"] + 1e-15
    # the overall numbers are those of every row
    assert abs(payload["log_loss"] - log_loss(label, prob)) < 1e-12


def test_table_shows_largest_segments_and_plot_has_a_curve_each(  # type: ignore[no-untyped-def]
    segmented, tmp_path: Path
) -> None:
    path = segmented[0]
    plot = tmp_path / "segments.png"
    result = _invoke(str(path), "--by", "country", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    table = result.stdout[result.stdout.index("Per segment") :]
    assert [line.split()[1] for line in table.splitlines() if line.startswith("│")] == [
        "fr", "de", "us", "jp"
    ]  # fmt: skip
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_segments_beyond_the_cap_are_an_error_naming_it(segmented) -> None:  # type: ignore[no-untyped-def]
    result = _invoke(str(segmented[0]), "--by", "country", "--max-segments", "3")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "--by country: more than 3 segments (the cap); the next is" in message
    assert "pass --max-segments to raise the cap" in message


def test_segments_beyond_the_cap_across_files_are_an_error_naming_it(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("label,prob,country\n1,0.9,fr\n0,0.2,de\n")
    second.write_text("label,prob,country\n1,0.6,fr\n0,0.4,us\n")
    result = _invoke(str(first), str(second), "--by", "country", "--max-segments", "2")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "more than 2 segments (the cap) in all files together; the next is us" in message


def test_missing_segment_value_is_its_own_segment(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("label,prob,country\n1,0.9,fr\n0,0.2,\n1,0.6,fr\n0,0.4,\n")
    payload = json.loads(_invoke(str(path), "--by", "country", "--json").stdout)
    assert {s["segment"]["country"]: s["rows"] for s in payload["segments"]} == {
        "fr": 2,
        "": 2,
    }


def test_segments_of_a_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    rows = [(1, 0.8, "fr"), (0, 0.3, "de"), (1, 0.6, "fr"), (0, 0.1, "fr")]
    path.write_text("".join(f'{{"label": {y}, "prob": {p}, "c": "{c}"}}\n' for y, p, c in rows))
    payload = json.loads(_invoke(str(path), "--by", "c", "--json").stdout)
    fr = next(s for s in payload["segments"] if s["segment"]["c"] == "fr")
    assert abs(fr["log_loss_nats"] - log_loss([1, 1, 0], [0.8, 0.6, 0.1])) < 1e-12


def test_a_segment_seen_only_on_skipped_rows_is_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("label,prob,country\n2,0.9,jp\n1,0.9,fr\n0,0.2,fr\n")
    payload = json.loads(_invoke(str(path), "--by", "country", "--skip-invalid", "--json").stdout)
    assert [s["segment"]["country"] for s in payload["segments"]] == ["fr"]
    assert payload["skipped"] == 1
