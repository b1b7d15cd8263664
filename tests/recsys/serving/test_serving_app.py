"""The HTTP API against the library: answers equal `crossent recommend`, errors are 4xx."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import numpy as np
import pytest
from _serving_helpers import N_ITEMS
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from crossent.cli import app as cli
from crossent.recsys.serving.app import create_app
from crossent.recsys.serving.checkpoint import load_checkpoint
from crossent.recsys.serving.recommend import recommend_histories, recommend_users

runner = CliRunner()


@pytest.fixture(scope="module")
def client(two_stage):
    with TestClient(create_app(two_stage), raise_server_exceptions=False) as test_client:
        yield test_client


def _cli_json(folder, user: str, k: int) -> dict:
    """The reference: `crossent recommend --user USER --json` (another process path)."""
    arguments = ["recommend", "--model", str(folder), "--user", user, "-k", str(k)]
    result = runner.invoke(cli, [*arguments, "--history", "10", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(("user", "k"), [("500", 10), ("517", 3), ("529", 25)])
def test_get_recommend_equals_crossent_recommend_in_values_and_order(client, two_stage, user, k):
    expected = _cli_json(two_stage, user, k)
    answer = client.get("/recommend", params={"user": user, "k": k})
    assert answer.status_code == 200
    got = answer.json()
    assert got["user"] == user
    assert got["history"] == expected["history"]
    assert [row["item"] for row in got["recommendations"]] == [
        row["item"] for row in expected["recommendations"]
    ]
    for mine, theirs in zip(got["recommendations"], expected["recommendations"], strict=True):
        assert mine.keys() == theirs.keys() == {
            "rank", "item", "score", "probability", "p_watch", "title"
        }  # fmt: skip
        assert mine["rank"] == theirs["rank"] and mine["title"] == theirs["title"]
        for field in ("score", "probability", "p_watch"):
            assert mine[field] == pytest.approx(theirs[field], rel=1e-5)


def test_a_user_who_watched_everything_gets_no_rows(client):
    answer = client.get("/recommend", params={"user": "999"})
    assert answer.status_code == 200
    assert answer.json()["recommendations"] == []


def test_post_history_equals_the_users_own_answer(client, two_stage):
    checkpoint = load_checkpoint(two_stage)
    user = 3
    start, stop = checkpoint.watch_indptr[user], checkpoint.watch_indptr[user + 1]
    watched = checkpoint.watch_items[start:stop]
    # the oldest watch named by its title, the others by id (integers and strings)
    history: list[int | str] = [str(checkpoint.titles[watched[0]]).upper()]
    history += [int(checkpoint.item_ids[item]) for item in watched[1:-1]]
    history.append(str(checkpoint.item_ids[watched[-1]]))
    reference = recommend_users(checkpoint, np.array([user]), 7)
    answer = client.post("/recommend", json={"history": history, "k": 7})
    assert answer.status_code == 200
    rows = answer.json()["recommendations"]
    assert [row["item"] for row in rows] == checkpoint.item_ids[reference.items[0]].tolist()
    np.testing.assert_allclose([row["p_watch"] for row in rows], reference.p_watch[0], rtol=1e-5)
    watched_ids = set(checkpoint.item_ids[watched].tolist())
    assert not watched_ids & {row["item"] for row in rows}  # already-watched excluded
    # the last 10 watches (the default ``recent``), most recent first
    assert [row["item"] for row in answer.json()["history"]] == (
        checkpoint.item_ids[watched[::-1][:10]].tolist()
    )


def test_a_shared_title_names_the_most_watched_item(client, two_stage):
    checkpoint = load_checkpoint(two_stage)
    counts = np.bincount(checkpoint.watch_items, minlength=N_ITEMS)
    twins = [3, 4]
    expected = twins[int(np.argmax(counts[twins]))] if counts[3] != counts[4] else 3
    answer = client.post("/recommend", json={"history": ["twin (2000)"], "k": 1})
    assert answer.json()["history"] == [{"item": 1000 + expected, "title": "Twin (2000)"}]


def test_concurrent_requests_share_batches_and_keep_their_own_answers(two_stage):
    checkpoint = load_checkpoint(two_stage)
    users = np.arange(20)
    reference = recommend_users(checkpoint, users, 5)
    # and two newcomers with long histories (other length groups, narrower windows cut)
    long_histories = [np.arange(40) * 7 % N_ITEMS, np.arange(20, 40)]
    indptr = np.array([0, 40, 60])
    newcomers = recommend_histories(checkpoint, indptr, np.concatenate(long_histories), 5)
    app = create_app(two_stage, max_batch=32, max_wait_ms=300)

    async def ask_all() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                asks = [
                    http.get("/recommend", params={"user": str(user + 500), "k": 5})
                    for user in users
                ]
                asks += [
                    http.post("/recommend", json={"history": (1000 + h).tolist(), "k": 5})
                    for h in long_histories
                ]
                return await asyncio.gather(*asks)

    answers = asyncio.run(ask_all())
    assert app.state.batcher.jobs == len(users) + 2
    assert app.state.batcher.batches < len(users)  # batched: fewer model calls than requests
    expected = [*reference.items, *newcomers.items]
    probabilities = [*reference.probability, *newcomers.probability]
    for row, answer in enumerate(answers):
        rows = answer.json()["recommendations"]
        assert [r["item"] for r in rows] == checkpoint.item_ids[expected[row]].tolist()
        np.testing.assert_allclose([r["probability"] for r in rows], probabilities[row], rtol=1e-5)


def test_one_stage_model_without_titles(one_stage):
    checkpoint = load_checkpoint(one_stage)
    reference = recommend_users(checkpoint, np.array([2]), 4)
    with TestClient(create_app(one_stage)) as client:
        rows = client.get("/recommend", params={"user": "502", "k": 4}).json()["recommendations"]
        assert [row["item"] for row in rows] == checkpoint.item_ids[reference.items[0]].tolist()
        assert all(row.keys() == {"rank", "item", "score", "probability"} for row in rows)
        assert client.get("/items", params={"q": "1003"}).json()["items"] == [
            {"item": 1003, "watches": int((checkpoint.watch_items == 3).sum())}
        ]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"user": "12345"}, 404, "user '12345' is not in the model's data"),
        ({"user": "0500"}, 404, "user '0500'"),
        ({"user": "500", "k": 0}, 422, "k = '0'"),
        ({"user": "500", "k": 61}, 422, "k = '61'"),
        ({"user": "500", "k": "ten"}, 422, "k = 'ten'"),
        ({}, 422, "user"),
    ],
)
def test_get_errors_are_4xx_naming_the_value(client, params, status, words):
    answer = client.get("/recommend", params=params)
    assert answer.status_code == status
    assert words in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b'{"history": [1000', 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[1000]", 422, "must be a JSON object"),
        (b'{"k": 3}', 422, "history: missing"),
        (b'{"history": [1000], "user": 1}', 422, "unknown field 'user'"),
        (b'{"history": 1000}', 422, "history = 1000: must be a list"),
        (b'{"history": [1000, [1]]}', 422, "history[1] = [1]"),
        (b'{"history": [true]}', 422, "history[0] = True"),
        (b'{"history": [1000], "k": 0}', 422, "k = 0"),
        (b'{"history": [1000], "k": 2.0}', 422, "k = 2.0"),
        (b'{"history": [1000, 7, "No Such Film"]}', 422, "2 unknown item id(s) or title(s): 7,"),
        (b'{"history": [' + b"1000," * 1000 + b"1000]}", 413, "history has 1001 items"),
        (b'{"history": ["' + b"x" * (1 << 20) + b'"]}', 413, "limit"),
    ],
)
def test_post_errors_are_4xx_naming_the_value(client, body, status, words):
    answer = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert words in answer.json()["detail"]


def test_unknown_items_are_listed(client):
    answer = client.post("/recommend", json={"history": [1000, 7, "No Such Film", "7"]})
    assert answer.status_code == 422
    assert answer.json()["unknown"] == [7, "No Such Film", "7"]


def test_the_server_keeps_serving_after_errors(client):
    for _ in range(3):
        client.post("/recommend", content=b"{")
        client.get("/recommend", params={"user": "nobody"})
    assert client.get("/recommend", params={"user": "500"}).status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"


def test_title_search_puts_titles_that_start_with_the_text_first(client, two_stage):
    checkpoint = load_checkpoint(two_stage)
    counts = np.bincount(checkpoint.watch_items, minlength=N_ITEMS)

    def expected(text: str) -> list[int]:
        titles = [(title or "").lower() for title in checkpoint.titles]
        found = [i for i, title in enumerate(titles) if text in title]
        found.sort(key=lambda i: (not titles[i].startswith(text), -counts[i], i))
        return [1000 + i for i in found]

    for text in ("film 101", "(2000", "0 (", "i"):
        rows = client.get("/items", params={"q": text, "limit": 50}).json()["items"]
        assert [row["item"] for row in rows] == expected(text)[:50]
    rows = client.get("/items", params={"q": "TWIN"}).json()["items"]
    assert [row["title"] for row in rows] == ["Twin (2000)", "Twin (2000)"]
    assert client.get("/items", params={"q": "zzz"}).json()["items"] == []
    assert client.get("/items", params={"q": "film", "limit": 51}).status_code == 422


def test_users_lists_ids_by_prefix_with_their_watch_counts(client, two_stage):
    checkpoint = load_checkpoint(two_stage)
    answer = client.get("/users", params={"prefix": "51"}).json()
    assert [row["user"] for row in answer["users"]] == [str(u) for u in range(510, 520)]
    assert answer["users"][0]["watches"] == int(np.diff(checkpoint.watch_indptr)[10])
    assert answer["total"] == 31


def test_health_readiness_page_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["items"] == N_ITEMS and ready["two_stage"]
    page = client.get("/")
    assert page.status_code == 200 and "crossent recommender" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs/swagger-ui-bundle.js" in docs.text
    assert "http" not in docs.text.replace("/openapi.json", "")  # no CDN
    assert client.get("/docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs/..%2Fpage.html").status_code == 404
    assert set(client.get("/openapi.json").json()["paths"]) >= {"/recommend", "/items"}


def test_no_cors_unless_asked(client, two_stage):
    origin = {"origin": "http://example.test"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers=origin).headers
    with TestClient(create_app(two_stage, cors_origins=["http://example.test"])) as allowed:
        headers = allowed.get("/healthz", headers=origin).headers
        assert headers["access-control-allow-origin"] == "http://example.test"


def test_a_full_queue_gets_503_with_retry_after_and_accepted_requests_are_answered(two_stage):
    # one worker, held: the next two requests queue, and the two after them are refused
    app = create_app(two_stage, max_batch=1, max_wait_ms=0, queue_limit=2, workers=1)
    gate, entered = threading.Event(), threading.Event()
    answer_batch = app.state.batcher.work

    def held(questions):  # the model work, held until the refused requests are in
        entered.set()
        gate.wait(30)
        return answer_batch(questions)

    app.state.batcher.work = held

    async def flood() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                ask = lambda user: http.get("/recommend", params={"user": user})  # noqa: E731
                first = asyncio.ensure_future(ask("500"))  # taken by the held worker
                for _ in range(2000):  # bounded: at most 10 s
                    if entered.is_set():
                        break
                    await asyncio.sleep(0.005)
                queued = [asyncio.ensure_future(ask(u)) for u in ("501", "502")]
                for _ in range(1000):
                    if app.state.batcher.waiting == 2:
                        break
                    await asyncio.sleep(0.005)
                refused = await asyncio.gather(
                    ask("503"), http.post("/recommend", json={"history": [1000]})
                )
                gate.set()
                return list(await asyncio.gather(first, *queued)), list(refused)

    accepted, refused = asyncio.run(flood())
    assert [answer.status_code for answer in refused] == [503, 503]
    assert all(answer.headers["retry-after"] == "1" for answer in refused)
    assert "busy" in refused[0].json()["detail"]
    assert [answer.status_code for answer in accepted] == [200, 200, 200]
    assert [answer.json()["user"] for answer in accepted] == ["500", "501", "502"]
