"""Recommendations: probabilities against a NumPy softmax, the two-stage flow, --all, titles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from crossent.cli import app
from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.data.titles import read_titles, titles_near
from crossent.recsys.models.blend import candidate_model
from crossent.recsys.models.networks import CandidateConfig
from crossent.recsys.models.ranker import RankingConfig, RankingModel
from crossent.recsys.models.ranking_inputs import DENSE_FEATURES, inputs_from_windows
from crossent.recsys.serving.checkpoint import load_checkpoint, save_checkpoint
from crossent.recsys.serving.recommend import recommend_users

runner = CliRunner()
N_USERS, N_ITEMS = 9, 40


#: the candidate models a checkpoint can hold: CandidateConfig fields of each
MODELS = {
    "sequence": {},
    "sequence, tied embeddings": {"tie_embeddings": True},  # no item_out: scored by item_in
    "bag": {"model": "bag"},
    # a sequence model and its bag, log-probabilities averaged: one wider dot product
    "blend": {"model": "blend", "bag_weight": 0.3},
}


def _checkpoint(folder: Path, *, ranking: bool, titles: bool, model: str = "sequence") -> Path:
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(N_USERS) + 500, 6)
    items = np.concatenate([rng.choice(N_ITEMS, 6, replace=False) + 1000 for _ in range(N_USERS)])
    watches = Interactions.from_arrays(users, items, rng.permutation(len(items)))
    # every item watched by someone: ids 1000..1039 map to contiguous 0..39
    watches = Interactions.from_arrays(
        np.concatenate([users, np.full(N_ITEMS, 999)]),
        np.concatenate([items, np.arange(N_ITEMS) + 1000]),
        np.concatenate([watches.timestamp, np.arange(N_ITEMS) + 100]),
    )
    torch.manual_seed(0)
    candidate = candidate_model(
        CandidateConfig(n_items=N_ITEMS, dim=6, hidden=8, history=4, **MODELS[model])
    )
    with torch.no_grad():
        (candidate.bag if model == "blend" else candidate).item_bias.normal_()
    stage = RankingModel(RankingConfig(dim=6, n_dense=len(DENSE_FEATURES), hidden=(8,)))
    with torch.no_grad():
        for parameter in stage.parameters():
            parameter.normal_()
    names = [f"Film {item}, The" for item in watches.item_ids] if titles else None
    return save_checkpoint(
        folder, candidate, watches, ranking=stage if ranking else None, titles=names
    )


def _reference_logits(checkpoint, user: int) -> tuple[np.ndarray, np.ndarray]:
    """The full (n_items,) logits of ``user`` from the model in float64, and its watches."""
    start, stop = checkpoint.watch_indptr[user], checkpoint.watch_indptr[user + 1]
    watched = checkpoint.watch_items[start:stop]
    window = np.full((1, checkpoint.candidate.config.history), N_ITEMS)
    recent = watched[-checkpoint.candidate.config.history :]
    window[0, : len(recent)] = recent
    with torch.no_grad():
        logits = checkpoint.candidate.scores(torch.from_numpy(window))[0].double().numpy()
    return logits, watched


@pytest.mark.parametrize(
    ("cells", "model"),
    [(7, "sequence"), (1 << 20, "sequence"), (7, "bag"), (7, "sequence, tied embeddings"),
     (7, "blend"), (1 << 20, "blend")],
)
def test_probability_is_the_softmax_over_unwatched_items(tmp_path, cells, model):
    checkpoint = load_checkpoint(_checkpoint(tmp_path, ranking=False, titles=False, model=model))
    assert checkpoint.candidate.config == CandidateConfig(
        n_items=N_ITEMS, dim=6, hidden=8, history=4, **MODELS[model]
    )
    users = np.arange(N_USERS + 1)
    batch = recommend_users(checkpoint, users, 8, cells=cells)  # 7 cells: 1-item blocks
    for row, user in enumerate(users):
        logits, watched = _reference_logits(checkpoint, user)
        unwatched = np.setdiff1d(np.arange(N_ITEMS), watched)
        if len(unwatched) == 0:  # user 999 watched every item: nothing to recommend
            assert (batch.items[row] == -1).all()
            continue
        # the softmax over the unwatched items, from its definition
        probs = np.exp(logits[unwatched] - logits[unwatched].max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")[: min(8, len(unwatched))]
        expected_items = unwatched[order]
        got = batch.items[row][batch.items[row] >= 0]
        assert np.array_equal(got, expected_items)
        np.testing.assert_allclose(batch.probability[row][: len(got)], probs[order], rtol=1e-5)
        np.testing.assert_allclose(batch.scores[row][: len(got)], logits[expected_items], rtol=1e-5)
    assert checkpoint.user_ids[-1] == 999


def test_two_stage_reranks_the_top_candidates_by_p_watch(tmp_path):
    checkpoint = load_checkpoint(_checkpoint(tmp_path, ranking=True, titles=False))
    batch = recommend_users(checkpoint, np.arange(N_USERS), 5, candidates=12, cells=50)
    counts = np.bincount(checkpoint.watch_items, minlength=N_ITEMS).astype(np.float64)
    for user in range(N_USERS):
        logits, watched = _reference_logits(checkpoint, user)
        logits[watched] = -np.inf
        shortlist = np.argsort(-logits, kind="stable")[:12]
        start, stop = checkpoint.watch_indptr[user], checkpoint.watch_indptr[user + 1]
        window = np.full((12, 4), N_ITEMS)
        recent = checkpoint.watch_items[start:stop][-4:]
        window[:, : len(recent)] = recent
        inputs = inputs_from_windows(
            checkpoint.candidate,
            torch.from_numpy(window),
            shortlist,
            np.zeros(12),
            counts[shortlist],
        )
        with torch.no_grad():
            logit = checkpoint.ranking(inputs.user, inputs.item, inputs.dense).double().numpy()
        p_watch = 1 / (1 + np.exp(-logit))
        best = np.argsort(-p_watch, kind="stable")[:5]
        assert np.array_equal(batch.items[user], shortlist[best])
        # float32 logits from batches of different shapes (every user at once vs this user's
        # 12 rows) differ in summation order by a few ulp: at |logit| ~ 5 one ulp is 4.8e-7,
        # and P(watch)'s relative error is (1 - p) times the logit's absolute error
        np.testing.assert_allclose(batch.p_watch[user], p_watch[best], rtol=1e-5)
    # a shortlist of k is the candidate order itself, re-ranked
    assert not np.array_equal(
        batch.items, recommend_users(checkpoint, np.arange(N_USERS), 5, rank=False).items
    )


def _json_rows(folder: Path, user: str) -> list[dict]:
    result = runner.invoke(
        app,
        [
            "recommend",
            "--model",
            str(folder),
            "--user",
            user,
            "--json",
            "-k",
            "4",
            "--candidates",
            "9",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["recommendations"]


@pytest.mark.parametrize(("ranking", "suffix"), [(True, ".parquet"), (False, ".csv")])
def test_all_users_rows_equal_the_per_user_recommendations(tmp_path, ranking, suffix):
    folder = _checkpoint(tmp_path / "model", ranking=ranking, titles=True)
    out = tmp_path / f"recs{suffix}"
    result = runner.invoke(
        app,
        [
            "recommend",
            "--model",
            str(folder),
            "--all",
            "--out",
            str(out),
            "-k",
            "4",
            "--candidates",
            "9",
            "--batch-users",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out) if suffix == ".parquet" else pa_csv.read_csv(out)
    rows = table.to_pylist()
    expected_columns = ["user", "rank", "item", "score", "probability"]
    expected_columns += ["p_watch", "title"] if ranking else ["title"]
    assert table.column_names == expected_columns
    for user in (500, 504, 508, 999):  # first, middle and last batch; one with nothing left
        mine = [row for row in rows if str(row["user"]) == str(user)]
        theirs = _json_rows(folder, str(user))
        assert [(r["rank"], r["item"], r["title"]) for r in mine] == [
            (r["rank"], r["item"], r["title"]) for r in theirs
        ]
        for key in ("score", "probability", *(["p_watch"] if ranking else [])):
            np.testing.assert_allclose([r[key] for r in mine], [r[key] for r in theirs], rtol=1e-5)
    assert len(rows) == 4 * N_USERS  # user 999 has watched everything


def test_recommend_shows_titles_history_and_probabilities(tmp_path):
    folder = _checkpoint(tmp_path, ranking=True, titles=True)
    result = runner.invoke(
        app, ["recommend", "--model", str(folder), "--user", "501", "--history", "2", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    checkpoint = load_checkpoint(folder)
    user = checkpoint.user_index("501")
    last = checkpoint.watch_items[checkpoint.watch_indptr[user + 1] - 1]
    assert "last 2 watches of user 501" in result.output
    assert f"Film {checkpoint.item_ids[last]}, The" in result.output.split("top 3")[0]
    for header in ("title", "P(next watch)", "P(watch)"):
        assert header in result.output


def test_without_titles_the_column_is_absent(tmp_path):
    folder = _checkpoint(tmp_path, ranking=False, titles=False)
    rows = _json_rows(folder, "501")
    assert rows and all("title" not in row and "p_watch" not in row for row in rows)
    result = runner.invoke(app, ["recommend", "--model", str(folder), "--user", "501"])
    assert "title" not in result.output and "P(watch)" not in result.output


def test_movielens_title_files_are_found_and_read(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    assert titles_near(tmp_path / "ratings.csv") is None
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n1000,"American President, The (1995)",Comedy\n1001,Heat,Action\n'
    )
    assert titles_near(tmp_path / "ratings.csv") == tmp_path / "movies.csv"
    assert read_titles(tmp_path / "movies.csv") == {
        "1000": "American President, The (1995)",
        "1001": "Heat",
    }
    (tmp_path / "u.item").write_bytes("1000|Café (1995)|01-Jan-1995||0|1\n".encode("latin-1"))
    assert read_titles(tmp_path / "u.item") == {"1000": "Café (1995)"}
    (tmp_path / "movies.dat").write_bytes(b"1002::Star Wars: Episode IV (1977)::Sci-Fi\n")
    assert read_titles(tmp_path / "movies.dat") == {"1002": "Star Wars: Episode IV (1977)"}


def test_items_file_overrides_the_titles(tmp_path):
    folder = _checkpoint(tmp_path / "model", ranking=False, titles=False)
    items = tmp_path / "items.csv"
    items.write_text("item_id,name\n" + "".join(f"{i},Video {i}\n" for i in range(1000, 1040)))
    result = runner.invoke(
        app, ["recommend", "--model", str(folder), "--user", "501", "--json", "--items", str(items)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["recommendations"]
    assert all(row["title"] == f"Video {row['item']}" for row in rows)
    items.write_text("id,genre\n1000,x\n")
    with pytest.raises(CrossentError, match=r"items\.csv: no title column"):
        read_titles(items)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--all"], "--all and --users write their rows to --out"),
        (["--user", "501", "--all"], "give exactly one of --user, --all or --users"),
        (["--all", "--out", "recs.txt"], "must end in .parquet or .csv"),
        (["--user", "501", "-k", "0"], "k = 0 must be an integer >= 1"),
        (["--user", "501", "--history", "-1"], "--history = -1 must be an integer >= 0"),
        (["--user", "501", "--out", "r.csv"], "--out is for --all and --users"),
    ],
)
def test_recommend_option_errors_exit_2(tmp_path, arguments, message):
    folder = _checkpoint(tmp_path, ranking=False, titles=False)
    result = runner.invoke(app, ["recommend", "--model", str(folder), *arguments])
    assert result.exit_code == 2 and message in result.output, result.output


def test_users_file_names_the_line_of_an_unknown_user(tmp_path):
    folder = _checkpoint(tmp_path / "model", ranking=False, titles=False)
    users, out = tmp_path / "users.txt", tmp_path / "r.csv"
    command = ["recommend", "--model", str(folder), "--users", str(users), "--out", str(out)]
    users.write_text("user\n501\n\n12345\n")
    result = runner.invoke(app, command)
    assert result.exit_code == 2
    assert "users.txt line 4: user '12345' is not in the model's data" in result.output
    users.write_text("501\n502\n")
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert {row["user"] for row in pa_csv.read_csv(out).to_pylist()} == {501, 502}


def test_evaluate_on_simulated_data_needs_a_simulated_model(tmp_path):
    folder = _checkpoint(tmp_path, ranking=False, titles=False)
    result = runner.invoke(app, ["evaluate", "--model", str(folder), "--data", "simulated"])
    assert result.exit_code == 2
    assert "the model was not trained on simulated data" in result.output
