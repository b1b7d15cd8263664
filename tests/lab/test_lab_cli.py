"""`crossent lab` through typer's CliRunner: files written, --json, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crossent.cli import app

TINY = ["--seeds", "1", "--epochs", "2"]


def invoke(*args: str):  # -> click.testing.Result
    return CliRunner().invoke(app, ["lab", *args])


def test_lab_prints_the_table_and_writes_html_and_markdown(tmp_path: Path) -> None:
    result = invoke("--dataset", "wine", "--losses", "ce,mse", *TINY, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "log loss (bits)" in result.stdout
    assert "mse" in result.stdout
    html = (tmp_path / "lab.html").read_text()
    markdown = (tmp_path / "lab.md").read_text()
    assert html.count("data:image/png;base64,") == 4  # curves x2, reliability, recall bars
    assert "| ce |" in markdown
    assert "ECE, 10 equal-width bins" in markdown  # the table names the bins of its ECE
    for name in ("validation_log_loss", "training_curves", "reliability", "per_class_recall"):
        assert f"(lab_{name}.png)" in markdown
        assert (tmp_path / f"lab_{name}.png").stat().st_size > 0


def test_json_output_parses_and_matches_the_written_file(tmp_path: Path) -> None:
    result = invoke(
        "--dataset", "synthetic", "--losses", "ce,focal", *TINY, "--out", str(tmp_path), "--json"
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["summary"]) == {"ce", "focal"}
    assert payload["summary"] == json.loads((tmp_path / "lab.json").read_text())["summary"]
    assert payload["data"]["bayes_error"] is not None
    assert Path(payload["files"]["html"]).is_file()


def test_csv_data_with_string_labels_runs(tmp_path: Path) -> None:
    csv_path = tmp_path / "iris_like.csv"
    lines = ["a,b,species"]
    for i in range(30):
        species = ("setosa", "versicolor", "virginica")[i % 3]
        lines.append(f"{i % 3 + 0.1 * i},{(i * 7) % 5},{species}")
    csv_path.write_text("\n".join(lines) + "\n")
    result = invoke(
        "--data", str(csv_path), "--target", "species", *TINY, "--losses", "ce",
        "--out", str(tmp_path / "out"), "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["classes"] == ["setosa", "versicolor", "virginica"]


def test_unknown_loss_is_one_line_exit_2_listing_the_valid_ones() -> None:
    result = invoke("--losses", "ce,hinge")
    assert result.exit_code == 2
    assert "--losses 'hinge' is not one of ce, mse, mae, smooth, focal, weighted" in result.output
    assert "Traceback" not in result.output


def test_repeated_loss_is_reported_by_the_library_with_its_position() -> None:
    result = invoke("--losses", "ce,mse,ce")
    assert result.exit_code == 2
    assert "losses[2] = 'ce' is repeated" in result.output


def test_unknown_dataset_is_one_line_exit_2_listing_the_valid_ones() -> None:
    result = invoke("--dataset", "iris")
    assert result.exit_code == 2
    assert "--dataset 'iris' is not one of digits, breast_cancer, wine, synthetic" in (
        result.output
    )


def test_unknown_model_lists_the_valid_ones() -> None:
    result = invoke("--model", "tree")
    assert result.exit_code == 2
    assert "--model 'tree' is not one of mlp, linear" in result.output


def test_dataset_accepts_hyphen_and_underscore_spellings(tmp_path: Path) -> None:
    outputs = []
    for spelling in ("breast-cancer", "breast_cancer"):
        result = invoke(
            "--dataset", spelling, "--losses", "ce", "--seeds", "1", "--epochs", "1",
            "--model", "linear", "--out", str(tmp_path / spelling), "--json",
        )
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout))
    assert outputs[0]["config"]["dataset"] == outputs[1]["config"]["dataset"] == "breast_cancer"
    assert outputs[0]["data"]["rows"] == outputs[1]["data"]["rows"] == 569  # sklearn's data set


def test_non_numeric_csv_feature_names_file_line_and_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("x,y,label\n1,2,a\n3,oops,b\n")
    result = invoke("--data", str(csv_path), "--target", "label")
    assert result.exit_code == 2
    assert "bad.csv line 3, column 'y': value 'oops' is not a number" in result.output


def test_dataset_and_data_together_is_an_error(tmp_path: Path) -> None:
    result = invoke("--dataset", "wine", "--data", str(tmp_path / "x.csv"), "--target", "y")
    assert result.exit_code == 2
    assert "give --dataset or --data, not both" in result.output


def test_target_without_data_is_an_error() -> None:
    result = invoke("--target", "label")
    assert result.exit_code == 2
    assert "--target 'label' needs --data" in result.output
