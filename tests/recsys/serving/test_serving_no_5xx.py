"""Property: whatever a client sends, the server answers below 500, in JSON, and keeps serving."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossent.recsys.serving.app import create_app

PATHS = ["/recommend", "/items", "/users", "/healthz", "/readyz", "/", "/docs", "/docs/x"]
KEYS = ["user", "k", "q", "limit", "prefix", "history"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
history_entries = st.integers(min_value=990, max_value=1070) | st.sampled_from(
    ["Twin (2000)", "film 1001 (1991)", "1003", "", "x"]
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {"history": st.lists(history_entries | json_values, max_size=12)},
        optional={"k": json_values | st.integers(-5, 70), "extra": json_values},
    ).map(lambda value: json.dumps(value).encode()),
)
paths = st.sampled_from(PATHS) | st.text(max_size=20).map(lambda text: "/" + quote(text))
queries = st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=8),
    st.text(max_size=20) | st.integers(-(2**70), 2**70).map(str),
    max_size=4,
)


@pytest.fixture(scope="module")
def client(two_stage):
    with TestClient(create_app(two_stage), raise_server_exceptions=False) as test_client:
        yield test_client


def _check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert "detail" in response.json()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), path=paths, query=queries)
def test_no_query_string_gets_a_5xx(client, method, path, query):
    _check(client.request(method, path, params=query))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_no_body_gets_a_5xx(client, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    _check(client.post("/recommend", content=body, headers=headers))


def test_the_server_still_answers_after_the_fuzzing(client):
    assert client.get("/recommend", params={"user": "500"}).status_code == 200
