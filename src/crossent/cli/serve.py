"""`crossent serve`: a trained recommender behind an HTTP API and a web page (uvicorn)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated

import typer

from crossent._validation.numbers import check_int, check_number
from crossent.errors import CrossentError


def _check_host(host: str) -> None:
    """A host uvicorn can bind: an IP address, or a name that resolves."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        raise CrossentError(
            f"--host {host!r}: not an IP address nor a name that resolves"
        ) from None


def serve(
    model: Annotated[Path, typer.Option(help="Folder written by `crossent train` or `demo`.")],
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_batch: Annotated[
        int, typer.Option(help="Most requests answered by one model call (1: no batching).")
    ] = 64,
    max_wait_ms: Annotated[
        float, typer.Option(help="Longest a request waits for others to share its batch.")
    ] = 2.0,
    queue_limit: Annotated[
        int, typer.Option(help="Requests queued before new ones get 503 with Retry-After.")
    ] = 256,
    candidates: Annotated[
        int, typer.Option(help="With a ranking stage: how many candidates it re-ranks.")
    ] = 100,
    max_history: Annotated[int, typer.Option(help="Most items in a posted history.")] = 1000,
    max_body_kib: Annotated[int, typer.Option(help="Most KiB in a request body.")] = 1024,
    workers: Annotated[
        int, typer.Option(help="Batches answered at once, each on its own thread.")
    ] = 2,
    threads: Annotated[int, typer.Option(help="Torch threads for each batch's work.")] = 1,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="Allow browser calls from this origin (repeatable); none by default."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request on stderr.")] = False,
) -> None:
    """Serve a model over HTTP: GET/POST /recommend, /items, /users, /healthz, /readyz, a web
    page at / and the API's documentation at /docs.

    Concurrent requests are batched into one model call (--max-batch, --max-wait-ms), up to
    --workers batches at once; past --queue-limit queued requests the server answers 503 with
    Retry-After. It listens on 127.0.0.1 unless --host says otherwise, allows no cross-origin
    calls unless --cors-origin names an origin, and on SIGTERM or Ctrl-C finishes the requests
    in flight before it exits.
    """
    check_int(port, "--port", low=1, high=65535)
    check_int(max_batch, "--max-batch", low=1)
    check_number(max_wait_ms, "--max-wait-ms", low=0, high=1000)
    check_int(queue_limit, "--queue-limit", low=1)
    check_int(candidates, "--candidates", low=1)
    check_int(max_history, "--max-history", low=1)
    check_int(max_body_kib, "--max-body-kib", low=1)
    check_int(workers, "--workers", low=1, high=64)
    check_int(threads, "--threads", low=1)
    _check_host(host)
    for origin in cors_origin or []:
        if not origin.startswith(("http://", "https://")) and origin != "*":
            raise CrossentError(f"--cors-origin {origin!r}: expected http(s)://host[:port] or *")

    import torch
    import uvicorn

    from crossent.recsys.serving.app import create_app

    torch.set_num_threads(threads)
    app = create_app(
        model,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        queue_limit=queue_limit,
        workers=workers,
        cors_origins=cors_origin or (),
        candidates=candidates,
        max_history=max_history,
        max_body=max_body_kib * 1024,
    )
    # uvicorn's own SIGTERM/SIGINT handling: stop accepting, finish in-flight requests, then
    # run the app's shutdown (the batcher stops once nothing is queued)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=30,
        server_header=False,
    )
