"""The recommender commands through typer's CliRunner: exit codes, output, files, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossent.cli import app
from crossent.recsys import defaults
from crossent.recsys.models.blend import BlendedCandidate
from crossent.recsys.serving.checkpoint import load_checkpoint

runner = CliRunner()


def _ratings_file(path: Path) -> Path:
    """A tiny MovieLens-style ratings.csv: 30 users, 25 movies, ratings 1-5 in time order."""
    rng = np.random.default_rng(0)
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, 31):
        movies = rng.choice(np.arange(100, 125), size=10, replace=False)
        for step, movie in enumerate(movies):
            lines.append(f"{user},{movie},{rng.integers(3, 6)}.0,{1_000_000 + 100 * user + step}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_demo_quick_prints_the_tables_and_writes_the_report(tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(
        app, ["demo", "--quick", "--users", "150", "--videos", "40", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for text in ("Bayes limit", "most popular", "EASE (λ =", "truth (oracle)",
                 "true probabilities", "bag model", "protocol: time-ordered leave-last-out"):
        assert text in result.output
    # both candidate models' distance from the Bayes limit, in bits
    assert "sequence model: test cross-entropy" in result.output
    assert "bag model: test cross-entropy" in result.output
    for name in ("report.html", "loss_curves.png", "validation_ndcg.png", "reliability.png",
                 "model/manifest.json"):
        assert (out / name).is_file()
    html = (out / "report.html").read_text()
    assert "Candidate generation" in html and "validation_ndcg" in html
    again = runner.invoke(app, ["evaluate", "--model", str(out / "model"), "--data", "simulated"])
    assert again.exit_code == 0, again.output
    assert "Bayes limit" in again.output


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data = _ratings_file(folder / "ratings.csv")
    out = folder / "model"
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--dim",
            "8",
            "--min-rating",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    return data, out, result.output


def test_train_on_a_ratings_file_reports_baselines_and_saves_a_checkpoint(trained_dir):
    _, out, output = trained_dir
    assert "most popular" in output and "HR@10" in output
    assert (out / "manifest.json").is_file()


def test_recommend_lists_unwatched_items_with_original_ids(trained_dir):
    data, out, _ = trained_dir
    result = runner.invoke(app, ["recommend", "--model", str(out), "--user", "7", "-k", "3"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.strip()[:1] in "│|"]
    recommended = {int(line.split("│")[2]) for line in rows if line.count("│") >= 4}
    watched = {
        int(line.split(",")[1])
        for line in data.read_text().splitlines()[1:]
        if line.split(",")[0] == "7"
    }
    assert len(recommended) == 3
    assert recommended <= set(range(100, 125)) and not recommended & watched


def test_the_default_run_catches_up_on_every_watch_and_evaluate_refuses_to_rescore_it(
    trained_dir,
):
    data, out, output = trained_dir
    last = defaults.CATCH_UP  # exactly the default number of catch-up epochs
    assert all(f"catch-up epoch {epoch}:" in output for epoch in range(1, last + 1))
    assert f"catch-up epoch {last + 1}:" not in output
    stored = runner.invoke(app, ["evaluate", "--model", str(out)])
    assert stored.exit_code == 0 and "cross_entropy" in stored.output
    again = runner.invoke(
        app, ["evaluate", "--model", str(out), "--data", str(data), "--min-rating", "3"]
    )
    assert again.exit_code == 2
    assert "--catch-up 0" in again.output


def test_evaluate_recomputes_the_metrics_of_a_model_saved_without_catch_up(tmp_path):
    data = _ratings_file(tmp_path / "ratings.csv")
    out = tmp_path / "m"
    trained = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--dim", "8",
              "--min-rating", "3", "--catch-up", "0"],
    )
    assert trained.exit_code == 0, trained.output
    assert "catch-up" not in trained.output
    again = runner.invoke(
        app, ["evaluate", "--model", str(out), "--data", str(data), "--min-rating", "3"]
    )
    assert again.exit_code == 0, again.output
    assert "EASE" in again.output


def test_a_sampled_evaluation_is_reported_saved_and_rescored_on_the_same_users(tmp_path):
    from crossent.cli._recsys_common import load_watches
    from crossent.recsys.reevaluate import evaluate_checkpoint
    from crossent.recsys.serving.checkpoint import load_checkpoint

    data = _ratings_file(tmp_path / "ratings.csv")
    out = tmp_path / "m"
    trained = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--dim", "8",
              "--min-rating", "3", "--catch-up", "0", "--eval-users", "12", "--seed", "4"],
    )
    assert trained.exit_code == 0, trained.output
    assert "validation and test on 12 sampled users of 30" in trained.output
    html = (out / "report.html").read_text()
    assert "validation and test on 12 of the 30 users with 3 or more watches" in html
    assert "12 users held out for validation and test" in html
    checkpoint = load_checkpoint(out)
    assert checkpoint.extra["split"] == {"eval_users": 12, "seed": 4}
    stored = checkpoint.metrics["model"]
    assert stored["users"] == 12
    again = evaluate_checkpoint(
        checkpoint, load_watches(str(data), "auto", 3.0), progress=False
    ).retrieval["model"]
    assert again["users"] == 12
    for key in ("HR@10", "NDCG@10", "MRR"):
        assert again[key] == pytest.approx(stored[key], abs=1e-6), key


def test_the_ranking_stage_evaluates_every_user_whatever_eval_users_says(tmp_path):
    # its validation and test examples are every user's last two watches, so the candidate
    # generator under it must have held out every user's
    import json

    data = _ratings_file(tmp_path / "ratings.csv")
    tables = tmp_path / "tables.json"
    trained = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--stage", "ranking",
              "--epochs", "1", "--dim", "8", "--min-rating", "3", "--eval-users", "12",
              "--json", str(tables)],
    )
    assert trained.exit_code == 0, trained.output
    assert "sampled users" not in trained.output
    (retrieval,) = [t for t in json.loads(tables.read_text()).values() if "users" in t["headers"]]
    users = retrieval["headers"].index("users")
    assert {row[users] for row in retrieval["rows"]} == {30}


def test_unknown_user_exits_2_with_one_line_naming_the_id(trained_dir):
    _, out, _ = trained_dir
    result = runner.invoke(app, ["recommend", "--model", str(out), "--user", "999999"])
    assert result.exit_code == 2
    assert "user '999999' is not in the model's data" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--stage", "ranking", "--loss", "watch-time"], "a watch log has none"),
        (["--stage", "rank"], "--stage 'rank' is not one of retrieval, ranking"),
        (["--loss", "focal"], "--loss 'focal' is not one of full, sampled, bce, gbce"),
        (["--loss", "full,nope"], "--loss 'nope' is not one of full, sampled"),
        (["--model", "rnn"], "--model 'rnn' is not one of sequence, bag"),
        (["--lr-schedule", "linear"], "--lr-schedule 'linear' is not one of constant, cosine"),
        (["--blocks", "0"], "--blocks = 0 must be an integer >= 1"),
        (["--model", "bag", "--tie-embeddings"], "--tie-embeddings needs model = 'sequence'"),
    ],
)
def test_train_option_errors_exit_2(tmp_path, arguments, message):
    data = _ratings_file(tmp_path / "ratings.csv")
    result = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(tmp_path / "m"), *arguments]
    )
    assert result.exit_code == 2
    assert message in result.output


def test_missing_model_folder_exits_2(tmp_path):
    result = runner.invoke(app, ["recommend", "--model", str(tmp_path / "none"), "--user", "1"])
    assert result.exit_code == 2 and "no checkpoint file" in result.output


def test_train_on_a_small_simulated_catalogue_exits_zero(tmp_path):
    # regression: --videos 40 made users watch all 40 videos, leaving none to show
    result = runner.invoke(
        app,
        ["train", "--data", "simulated", "--videos", "40", "--users", "60", "--epochs", "1",
         "--dim", "8", "--out", str(tmp_path / "model")],
    )
    assert result.exit_code == 0, result.output
    assert "saved" in result.output


def test_train_on_a_too_small_simulated_catalogue_is_a_named_error(tmp_path):
    result = runner.invoke(
        app, ["train", "--data", "simulated", "--videos", "5", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert "--videos 5 is too small" in result.output


def test_train_with_several_losses_writes_one_table_of_objectives_beside_the_baselines(tmp_path):
    result = runner.invoke(
        app,
        ["train", "--data", "simulated", "--videos", "40", "--users", "60", "--epochs", "1",
         "--dim", "8", "--history", "6", "--loss", "full,sampled,bce,gbce",
         "--out", str(tmp_path / "model")],
    )
    assert result.exit_code == 0, result.output
    assert "saved" in result.output and "protocol: time-ordered leave-last-out" in result.output
    # the terminal table wraps in a narrow terminal; the report holds the same table
    html = (tmp_path / "model" / "report.html").read_text()
    for text in ("objective (sequence model)", ">full</td>", ">sampled</td>",
                 ">bce</td>", ">gbce</td>", "test CE (bits)", "train time (s)",
                 "peak memory (MiB)", "HR@20", "MRR", "most popular", "EASE (λ =", "bag model",
                 "protocol: time-ordered leave-last-out"):
        assert text in html, text
    assert (tmp_path / "model" / "validation_ndcg.png").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--history", "0"], "--history = 0 must be an integer >= 1"),
        (["--dim", "-3"], "--dim = -3 must be an integer >= 1"),
        (["--epochs", "0"], "--epochs = 0 must be an integer >= 1"),
        (["--patience", "0"], "--patience = 0 must be an integer >= 1"),
        (["--batch-size", "0"], "--batch-size = 0 must be an integer >= 1"),
        (["--max-examples", "0"], "--max-examples = 0 must be an integer >= 1"),
        (["--negatives", "0"], "--negatives = 0 must be an integer >= 1"),
        (["--holdout", "-1"], "--holdout = -1 must be an integer >= 0"),
        (["--eval-users", "-2"], "--eval-users = -2 must be an integer >= 0"),
        (["--catch-up", "-1"], "--catch-up = -1 must be an integer >= 0"),
        (["--blend", "1"], "--blend = 1.0 is outside [0, 1)"),
        (["--blend", "-0.5"], "--blend = -0.5 is outside [0, 1)"),
        (["--blend", "0.5", "--model", "bag"], "--blend 0.5 blends a sequence model with its "
         "bag model: it needs model = 'sequence', not 'bag'"),
        (["--blend", "0.5", "--stage", "ranking"], "--blend 0.5: the blend is saved by "
         "retrieval on a watch log, not with the ranking stage"),
        (["--dropout", "1"], "--dropout = 1.0 is outside [0, 1)"),
        (["--lr", "0"], "--lr = 0.0 must be"),
        (["--weight-decay", "-1"], "--weight-decay = -1.0"),
        (["--blocks", "0"], "--blocks = 0 must be an integer >= 1"),
        (["--users", "0"], "--users = 0 must be an integer >= 1"),
        (["--videos", "0"], "--videos = 0 must be an integer >= 1"),
        (["--seed", "-1"], "--seed = -1 must be an integer >= 0"),
        (["--min-rating", "nan"], "--min-rating = nan must be a finite number"),
        (["--threads", "0"], "--threads = 0 must be an integer >= 1"),
        (["--lr-schedule", "linear"], "--lr-schedule 'linear' is not one of constant, cosine"),
        (["--model", "mlp"], "--model 'mlp' is not one of sequence, bag"),
        (["--format", "xml"], "--format 'xml' is not one of"),
        (["--loss", "hinge"], "--loss 'hinge' is not one of"),
    ],
)
def test_a_bad_number_is_named_as_typed_before_any_data_is_read(tmp_path, arguments, message):
    missing = tmp_path / "not-there.csv"  # never opened: the option is checked first
    result = runner.invoke(
        app, ["train", "--data", str(missing), "--out", str(tmp_path / "m"), *arguments]
    )
    assert result.exit_code == 2
    assert message in result.output and "not-there" not in result.output


@pytest.mark.parametrize(("blend", "kind"), [("0.5", "blend"), ("0", "sequence")])
def test_blend_saves_the_sequence_model_with_its_bag_model_or_alone(tmp_path, blend, kind):
    data = _ratings_file(tmp_path / "ratings.csv")
    out = tmp_path / "m"
    trained = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--dim", "8",
              "--min-rating", "3", "--catch-up", "1", "--blend", blend],
    )
    assert trained.exit_code == 0, trained.output
    candidate = load_checkpoint(out).candidate
    assert candidate.config.model == kind
    blended = kind == "blend"
    # each member caught up on its own; the blend's test row beside the sequence model's
    assert ("catch-up (bag) epoch 1:" in trained.output) == blended
    assert ("sequence model" in trained.output) == blended  # the blend is the "model" row
    assert "catch-up epoch 1:" in trained.output and "validation NDCG@10 by weight" not in (
        trained.output
    )
    if blended:
        assert isinstance(candidate, BlendedCandidate) and candidate.config.bag_weight == 0.5
        recommended = runner.invoke(app, ["recommend", "--model", str(out), "--user", "7"])
        assert recommended.exit_code == 0, recommended.output


def test_refit_saves_a_model_trained_on_every_watch_that_evaluate_refuses(tmp_path):
    data = _ratings_file(tmp_path / "ratings.csv")
    out = tmp_path / "m"
    trained = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--dim", "8",
              "--min-rating", "3", "--refit"],
    )
    assert trained.exit_code == 0, trained.output
    assert "refit epoch 1" in trained.output and "refit epoch 3" not in trained.output
    again = runner.invoke(app, ["evaluate", "--model", str(out), "--data", str(data)])
    assert again.exit_code == 2
    assert "--refit" in again.output
