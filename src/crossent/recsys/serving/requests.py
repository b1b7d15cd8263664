"""Reading a ``POST /recommend`` body: size-limited, strict, every refusal a 4xx naming why.

The body is read in chunks and refused (413) as soon as it passes ``max_body`` bytes, so a
client cannot make the server hold a large upload; then parsed with orjson (malformed JSON,
nesting deeper than orjson's limit, or integers past 64 bits: 400), and checked field by field
(422), with the history's length checked before any item is looked up (413).

A valid body::

    {"history": [318, "Heat (1995)"], "k": 10}

``history``: item ids (integers or strings) or titles, oldest first; ``k`` optional (10).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from crossent._validation.numbers import check_int
from crossent.errors import CrossentError

DEFAULT_K = 10


class RequestError(Exception):
    """A refused request: ``status`` (4xx) and a ``detail`` naming the offending value."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def read_body(
    request: Request, max_body: int, max_history: int, max_k: int
) -> tuple[list[int | str], int]:
    """``(history entries, k)`` from the request's JSON body.

    Raises:
        RequestError: 413 for a body or history over its limit, 400 for malformed JSON, 422
            for a field of the wrong type or range, an unknown field or a missing history.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise RequestError(413, f"the body has {int(declared)} bytes; the limit is {max_body}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise RequestError(413, f"the body is over the limit of {max_body} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client disconnected before the body was read") from None
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as problem:
        raise RequestError(400, f"the body is not valid JSON: {problem}") from None
    if not isinstance(body, dict):
        raise RequestError(422, f"the body must be a JSON object, got {_shown(body)}")
    unknown = sorted(set(body) - {"history", "k"})
    if unknown:
        raise RequestError(422, f"unknown field {unknown[0]!r} (the fields: history, k)")
    if "history" not in body:
        raise RequestError(422, "history: missing (a list of item ids or titles)")
    history = body["history"]
    if not isinstance(history, list):
        raise RequestError(422, f"history = {_shown(history)}: must be a list")
    if len(history) > max_history:
        raise RequestError(413, f"history has {len(history)} items; the limit is {max_history}")
    for position, entry in enumerate(history):
        if isinstance(entry, bool) or not isinstance(entry, int | str):
            raise RequestError(
                422, f"history[{position}] = {_shown(entry)}: must be an item id or a title"
            )
    k = body.get("k", DEFAULT_K)
    try:
        check_int(k, "k", low=1, high=max_k)
    except CrossentError as problem:
        raise RequestError(422, str(problem)) from None
    return history, k


def recommend_body(max_k: int, max_history: int) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of ``POST /recommend`` (the handler reads it itself)."""
    schema = {
        "type": "object",
        "required": ["history"],
        "additionalProperties": False,
        "properties": {
            "history": {
                "type": "array",
                "maxItems": max_history,
                "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "description": "Item ids or titles, oldest first.",
            },
            "k": {"type": "integer", "minimum": 1, "maximum": max_k, "default": DEFAULT_K},
        },
    }
    example = {"history": [1, "Toy Story (1995)"], "k": 10}
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": example}},
    }
