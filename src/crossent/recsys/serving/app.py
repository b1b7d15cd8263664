"""The HTTP API and web page of a trained recommender: :func:`create_app`.

Endpoints (JSON unless said; the OpenAPI schema and a console at ``/docs``):

- ``GET /recommend?user=ID&k=10``: a checkpoint user's top ``k`` unwatched items, the rows of
  ``crossent recommend --user ID --json`` (``rank, item, score, probability, p_watch,
  title``), and ``history``: their last watches, most recent first.
- ``POST /recommend`` with ``{"history": [item ids or titles, oldest first], "k": 10}``: the
  same for someone the model never saw.
- ``GET /items?q=TEXT&limit=10``: titles containing ``TEXT`` (the page's autocomplete).
- ``GET /users?prefix=&limit=50``: user ids (the page's picker).
- ``GET /healthz`` (the process answers), ``GET /readyz`` (the model is loaded and the
  batcher runs; 503 otherwise), ``GET /`` (the page).

Requests are answered by the :class:`~crossent.recsys.serving.batcher.Batcher`: concurrent
ones share one model call. Errors are JSON ``{"detail": ...}`` with a 4xx status naming the
offending value: an unknown user 404; ``k`` out of range, a malformed field or unknown items
422 (``unknown`` lists the items); malformed JSON 400; a body over ``max_body`` bytes or a
history over ``max_history`` items 413; a full queue 503 with ``Retry-After``. No endpoint
reads a file named in a request; CORS is off unless ``cors_origins`` names origins.

Example::

    app = create_app("model", max_batch=64, max_wait_ms=2)
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from crossent._validation.numbers import check_int
from crossent.errors import CrossentError
from crossent.recsys.serving.batcher import Batcher, Overloaded, ShuttingDown
from crossent.recsys.serving.catalogue import Catalogue
from crossent.recsys.serving.checkpoint import load_checkpoint
from crossent.recsys.serving.engine import Engine, Question
from crossent.recsys.serving.recommend import DEFAULT_CELLS
from crossent.recsys.serving.requests import RequestError, read_body, recommend_body

#: the page's Content-Security-Policy: its own inline script and style, requests to itself
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


def _docs_assets() -> dict[str, tuple[bytes, str]]:
    """Swagger UI's script, style and icon, read once from the swagger-ui-bundle package."""
    folder = Path(swagger_ui_path)
    files = {
        "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
        "swagger-ui.css": ("swagger-ui.css", "text/css"),
        "favicon.png": ("favicon-32x32.png", "image/png"),
    }
    return {name: ((folder / file).read_bytes(), kind) for name, (file, kind) in files.items()}


BUSY = orjson.dumps({"detail": "the server is busy: too many requests queued; retry shortly"})


class _ShedWhenFull:
    """ASGI middleware: while the batcher's queue is full, ``/recommend`` gets its 503 before
    routing, validation or reading the body, so an overloaded server refuses at once."""

    def __init__(self, app: ASGIApp, batcher: Batcher[Any, Any]) -> None:
        self.app = app
        self.batcher = batcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/recommend" and self.batcher.full:
            headers = {"Retry-After": "1"}
            await Response(BUSY, 503, headers, media_type="application/json")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``content`` as JSON (orjson: NumPy-free plain values, NaN as null)."""
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


def error(status: int, detail: str, **extra: Any) -> Response:
    """The one error shape: ``{"detail": message, ...}``."""
    return json_response({"detail": detail} | extra, status)


def create_app(
    checkpoint_dir: str | Path,
    *,
    max_batch: int = 64,
    max_wait_ms: float = 2.0,
    queue_limit: int = 256,
    workers: int = 2,
    cors_origins: Sequence[str] = (),
    candidates: int = 100,
    max_history: int = 1000,
    max_body: int = 1 << 20,
    recent: int = 10,
    cells: int = DEFAULT_CELLS,
) -> FastAPI:
    """A FastAPI app serving the checkpoint in ``checkpoint_dir`` (see the module docstring).

    Args:
        max_batch, max_wait_ms, queue_limit: the batcher's limits
            (:class:`~crossent.recsys.serving.batcher.Batcher`); ``max_batch=1,
            max_wait_ms=0`` turns batching off.
        workers: batches answered at once, each on its own thread (the engine is safe to
            call from several).
        cors_origins: origins allowed to call the API from a browser; none by default.
        candidates: with a ranking stage, how many candidates it re-ranks (``k`` <= it).
        max_history: most items in a posted history (more: 413).
        max_body: most bytes in a request body (more: 413).
        recent: how many of a user's last watches an answer lists.
        cells: logits held at once in the catalogue sweep (bounds the memory).

    Raises:
        CrossentError: the checkpoint does not load, or a limit is out of range.
    """
    check_int(max_history, "max_history", low=1)
    check_int(max_body, "max_body", low=1)
    check_int(recent, "recent", low=0)
    origins = [str(origin) for origin in cors_origins]
    catalogue = Catalogue(load_checkpoint(checkpoint_dir))
    engine = Engine(catalogue, candidates=candidates, cells=cells)
    batcher: Batcher[Question, list[dict[str, Any]]] = Batcher(
        engine.answer,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        queue_limit=queue_limit,
        workers=workers,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the model and catalogue live as long as the server: out of the garbage collector's
        # reach, so its full collections do not walk them while requests wait
        gc.collect()
        gc.freeze()
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="crossent recommender",
        summary="Top-k unwatched items with P(next watch) and, two-stage, P(watch).",
        lifespan=lifespan,
        docs_url=None,  # served below from swagger-ui-bundle's files: no CDN
        redoc_url=None,
    )
    app.state.catalogue, app.state.engine, app.state.batcher = catalogue, engine, batcher
    app.add_middleware(_ShedWhenFull, batcher=batcher)
    if origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
        )  # fmt: skip
    _add_error_handlers(app)
    _add_recommend_routes(app, _Limits(max_history, max_body, recent))
    _add_lookup_routes(app)
    _add_page_routes(app)
    return app


@dataclass(frozen=True)
class _Limits:
    """What one request may ask: history items and body bytes; watches an answer lists."""

    max_history: int
    max_body: int
    recent: int


def _add_error_handlers(app: FastAPI) -> None:
    """The one error shape for validation errors, refused inputs and our own bugs."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, problem: RequestValidationError) -> Response:
        first = problem.errors()[0] if problem.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "query")
        value = first.get("input")
        shown = f" = {value!r}" if isinstance(value, str | int | float) else ""
        return error(422, f"{where}{shown}: {first.get('msg', 'invalid')}")

    @app.exception_handler(CrossentError)
    async def refused(_: Request, problem: CrossentError) -> Response:
        return error(422, str(problem))

    @app.exception_handler(Exception)
    async def failed(_: Request, problem: Exception) -> Response:
        # a bug of ours, not the client's: JSON without the traceback (uvicorn logs it)
        return error(500, f"internal error ({type(problem).__name__})")


def _add_recommend_routes(app: FastAPI, limits: _Limits) -> None:
    """``GET /recommend`` (a known user) and ``POST /recommend`` (a posted history)."""
    catalogue: Catalogue = app.state.catalogue
    engine: Engine = app.state.engine
    batcher: Batcher[Question, list[dict[str, Any]]] = app.state.batcher

    async def answer(question: Question, history: np.ndarray, head: dict[str, Any]) -> Response:
        try:
            rows = await batcher.submit(question)
        except Overloaded:
            return Response(BUSY, 503, {"Retry-After": "1"}, media_type="application/json")
        except ShuttingDown as stopping:
            return json_response({"detail": str(stopping)}, 503, {"Retry-After": "1"})
        shown = history[::-1][: limits.recent].tolist()
        return json_response(
            head | {"history": [catalogue.item(item) for item in shown], "recommendations": rows}
        )

    k_query = Query(ge=1, le=engine.max_k, description=f"How many items (1 to {engine.max_k}).")

    @app.get("/recommend", summary="A user's top-k unwatched items")
    async def recommend_user(
        user: Annotated[str, Query(max_length=200, description="User id, as in the data.")],
        k: Annotated[int, k_query] = 10,
    ) -> Response:
        index = catalogue.user(user)
        if index is None:
            return error(404, f"user {user!r} is not in the model's data")
        history = catalogue.watches(index)
        return await answer(Question(history, k), history, {"user": user})

    @app.post(
        "/recommend",
        summary="Top-k for a watch history given in the request",
        openapi_extra={"requestBody": recommend_body(engine.max_k, limits.max_history)},
    )
    async def recommend_history(request: Request) -> Response:
        try:
            entries, k = await read_body(
                request, limits.max_body, limits.max_history, engine.max_k
            )
        except RequestError as problem:
            return error(problem.status, problem.detail)
        history, unknown = catalogue.resolve(entries)
        if unknown:
            shown = ", ".join(repr(entry) for entry in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            return error(
                422,
                f"history: {len(unknown)} unknown item id(s) or title(s): {shown}{more}",
                unknown=unknown,
            )
        return await answer(Question(history, k), history, {})


def _add_lookup_routes(app: FastAPI) -> None:
    """Title search, user ids, and the liveness and readiness probes."""
    catalogue: Catalogue = app.state.catalogue
    engine: Engine = app.state.engine
    batcher: Batcher[Question, list[dict[str, Any]]] = app.state.batcher

    @app.get("/items", summary="Title search (for autocomplete)")
    async def items(
        q: Annotated[str, Query(min_length=1, max_length=200, description="Text in the title.")],
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> Response:
        return json_response({"items": catalogue.search(q, limit)})

    @app.get("/users", summary="User ids (for the page's picker)")
    async def users(
        prefix: Annotated[str, Query(max_length=200)] = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Response:
        rows = catalogue.users(prefix, limit)
        return json_response({"users": rows, "total": len(catalogue.user_text)})

    @app.get("/healthz", summary="The process answers")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz", summary="The model is loaded and requests are being answered")
    async def readyz() -> Response:
        body = {
            "status": "ready" if batcher.running else "not ready",
            "items": catalogue.n_items,
            "users": len(catalogue.user_text),
            "two_stage": engine.two_stage,
            "max_k": engine.max_k,
            "titles": catalogue.titles is not None,
            "queued": batcher.waiting,
            "workers": batcher.workers,
            "batches": batcher.batches,
            "answered": batcher.jobs,
        }
        return json_response(body, 200 if batcher.running else 503)


def _add_page_routes(app: FastAPI) -> None:
    """The page and the API's /docs, both from in-memory files (no CDN, no path from a
    request)."""
    page = resources.files("crossent.recsys.serving").joinpath("page.html").read_bytes()
    docs_assets = _docs_assets()

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="crossent recommender: API",
            swagger_js_url="/docs/swagger-ui-bundle.js",
            swagger_css_url="/docs/swagger-ui.css",
            swagger_favicon_url="/docs/favicon.png",
        )

    @app.get("/docs/{asset}", include_in_schema=False)
    async def docs_asset(asset: str) -> Response:
        # a fixed table of three in-memory files: the request's text never becomes a path
        if asset not in docs_assets:
            return error(404, f"no such file {asset!r}")
        content, media_type = docs_assets[asset]
        return Response(content, media_type=media_type)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY})
