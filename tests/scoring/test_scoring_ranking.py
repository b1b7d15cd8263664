"""`crossent score --ranking`: a recommender's own top-k file scores as `crossent evaluate` does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossent.cli import app
from crossent.errors import CrossentError
from crossent.recsys.data.interactions import Interactions, csr_rows, leave_last_out
from crossent.recsys.evaluation.protocol import evaluate_retrieval
from crossent.recsys.models.baselines import EASE
from crossent.scoring.ranking_files import score_ranking_file


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["score", *args])


def _watches(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    popularity = rng.dirichlet(np.full(40, 0.3))
    for user in range(80):
        watched = rng.choice(40, size=rng.integers(4, 15), replace=True, p=popularity)
        users += [user] * len(watched)
        items += watched.tolist()
        times += list(range(len(watched)))
    return Interactions.from_arrays(np.array(users), np.array(items), np.array(times))


def test_model_output_file_equals_in_memory_evaluation(tmp_path: Path) -> None:
    split = leave_last_out(_watches())
    model = EASE(lam=20.0).fit(split.train)
    users = split.users("test")
    indptr, items = csr_rows(*split.watched("test"), users)
    scores = np.asarray(model.score(users, (indptr, items)))
    truth = split.target("test")[users]
    lines, held = ["user,item,score\n"], ["user,item\n"]
    for row, user in enumerate(users):
        seen = set(items[indptr[row] : indptr[row + 1]].tolist())
        ranked = [i for i in np.argsort(-scores[row], kind="stable") if i not in seen]
        # the whole ranked catalogue (minus the history), shuffled: the file's order must not matter
        for item in np.random.default_rng(row).permutation(ranked):
            lines.append(f"u{user},i{item},{scores[row, item]:.17g}\n")
        held.append(f"u{user},i{truth[row]}\n")
    (tmp_path / "recs.csv").write_text("".join(lines))
    (tmp_path / "held.csv").write_text("".join(held))
    expected = evaluate_retrieval(model, split, ks=(5,), progress=False)
    result = score_ranking_file(tmp_path / "recs.csv", tmp_path / "held.csv", k=5)
    assert result.users == expected["users"]
    assert result.users_without_recommendations == 0
    for ours, theirs in (("hit_rate", "HR@5"), ("recall", "Recall@5"), ("ndcg", "NDCG@5"),
                         ("mrr", "MRR")):  # fmt: skip
        assert abs(getattr(result, ours) - expected[theirs]) < 1e-12, ours


def _hand_made(tmp_path: Path) -> tuple[Path, Path]:
    recs = tmp_path / "recs.csv"
    recs.write_text("user,item,rank\n1,a,2\n1,b,1\n1,c,3\n2,c,1\n2,d,2\n")
    truth = tmp_path / "held.csv"
    truth.write_text("user,item\n1,a\n1,c\n2,x\n3,a\n")
    return recs, truth


def test_hand_computed_metrics_and_users_without_recommendations(tmp_path: Path) -> None:
    recs, truth = _hand_made(tmp_path)
    result = _invoke("--ranking", str(recs), "--truth", str(truth), "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    # user 1: list b, a, c; relevant a (position 1) and c (position 2, outside k = 2)
    # user 2: no relevant item listed; user 3: no recommendations (a miss)
    assert payload["users"] == 3 and payload["users_without_recommendations"] == 1
    assert payload["hit_rate"] == pytest.approx(1 / 3)
    assert payload["recall"] == pytest.approx(0.5 / 3)
    ideal = 1 + 1 / np.log2(3)
    assert payload["ndcg"] == pytest.approx((1 / np.log2(3)) / ideal / 3)
    assert payload["mrr"] == pytest.approx(0.5 / 3)
    table = _invoke("--ranking", str(recs), "--truth", str(truth), "-k", "2").stdout
    assert "without recommendations" in table and "HR@2" in table


def test_duplicate_item_in_a_list_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    recs, truth = _hand_made(tmp_path)
    recs.write_text("user,item\n1,a\n1,b\n1,a\n")
    with pytest.raises(CrossentError, match=r"recs.csv line 4: item 'a' is listed twice for user "
                       r"'1' \(first at line 2\)"):  # fmt: skip
        score_ranking_file(recs, truth)
    result = _invoke("--ranking", str(recs))
    assert result.exit_code == 2 and "--ranking and --truth go together" in result.stderr
