"""`crossent serve` under load: requests/s, latency percentiles, errors and the server's RSS.

Every server runs as its own process (`python -m crossent serve`) on 127.0.0.1 and is driven
by a bounded number of concurrent async httpx clients, each asking ``GET /recommend?user=ID``
for random users, for a bounded number of requests and a bounded time. Four measurements:

1. **batched**: the ml-latest-small two-stage model at ``--clients`` (32) for ``--requests``
   (20,000) requests: requests/s, p50/p95/p99, errors, RSS before, after the first 1,000
   requests and after (targets: >= 300 requests/s, p99 <= 100 ms, 0 errors, RSS after within
   10% of RSS after 1,000);
2. **unbatched**: the same server with ``--max-batch 1 --max-wait-ms 0`` at the same
   concurrency; the ratio of throughputs (target: batching >= 3x), the median over
   ``--rounds`` (3) alternating rounds of ``--unbatched-requests`` (4,000) on each server, as a
   single short run of each swings by a fifth on 2 cores. Batching off is run with the
   batched server's ``--workers`` and with one worker, and each round takes the faster of the
   two (one request's model call is mostly Python, so a second worker can slow it down);
3. **overload**: a server with ``--queue-limit 8`` hit by a burst of 200 requests at once:
   the extra requests get 503 within 50 ms and every accepted one is answered;
4. **million**: a simulated 1,000,000-item two-stage checkpoint (random weights, written by
   :func:`crossent.recsys.serving.checkpoint.save_checkpoint`) at 8 clients: p99 (target <= 300 ms)
   and the server's peak RSS (target < 2 GiB).

The ml-latest-small model is ``--model DIR``, or trained once (``crossent train --stage
ranking --epochs 1``: quality is not what is measured) and kept in ``bench-results/``. The
client shares the machine's cores with the server, as the targets say; timings on a shared
machine are noisy, so the header prints the CPU and the load average.

    python benchmarks/bench_serve.py [--model DIR] [--requests 20000] [--clients 32]
    python benchmarks/bench_serve.py --quick      # fewer requests, smaller million model
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
MOVIELENS = ROOT / ".." / "shared" / "data" / "ml-latest-small" / "ratings.csv"
HOST = "127.0.0.1"  # every address the benchmark touches is on the loopback


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """``crossent serve`` in a subprocess on 127.0.0.1, stopped with SIGTERM on exit."""

    def __init__(self, model: Path, *options: str) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        command = [sys.executable, "-m", "crossent", "serve", "--model", str(model)]
        command += ["--host", HOST, "--port", str(self.port), *options]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"crossent serve failed: {self.process.stderr.read().decode()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise SystemExit("crossent serve did not become ready in 300 s")
        self.users = [
            row["user"] for row in httpx.get(self.base + "/users?limit=1000").json()["users"]
        ]

    def rss(self) -> float:
        return rss_mib(self.process.pid)

    def peak(self) -> float:
        return rss_mib(self.process.pid, "VmHWM")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    seconds: float = 0.0
    rss_at_1000: float = float("nan")

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 keep-alive request on an open connection: status, headers, body."""
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    await writer.drain()
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


def _answered(status: int, body: bytes) -> bool:
    return status == 200 and b'"recommendations":[{' in body


async def drive(
    server: Server, clients: int, requests: int, seconds: float, client: str = "raw"
) -> Load:
    """``clients`` concurrent loops of ``GET /recommend?user=ID&k=10`` for random users until
    ``requests`` were sent or ``seconds`` passed; an answer other than 200 with rows, or a
    transport error, counts as an error. ``client``: "raw" (HTTP/1.1 keep-alive on asyncio
    streams: the least client CPU, so the server gets the cores) or "httpx" (httpx.AsyncClient;
    on 2 cores its own CPU time per request is of the order of the server's)."""
    load = Load()
    sent = 0
    deadline = time.perf_counter() + seconds
    rng = random.Random(0)

    def record(ok: bool, status: int, start: float) -> None:
        load.statuses[status] = load.statuses.get(status, 0) + 1
        if ok:
            load.latencies.append(time.perf_counter() - start)
            if len(load.latencies) == 1000:
                load.rss_at_1000 = server.rss()
        else:
            load.errors += 1

    async def raw_loop() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(HOST, server.port)
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            target = f"/recommend?user={rng.choice(server.users)}&k=10"
            start = time.perf_counter()
            try:
                status, _, body = await _exchange(reader, writer, target)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                record(False, 0, start)
                reader, writer = await asyncio.open_connection(HOST, server.port)
                continue
            record(_answered(status, body), status, start)
        writer.close()

    async def httpx_loop(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            params = {"user": rng.choice(server.users), "k": 10}
            start = time.perf_counter()
            try:
                answer = await http.get("/recommend", params=params)
            except httpx.HTTPError:
                record(False, 0, start)
                continue
            record(_answered(answer.status_code, answer.content), answer.status_code, start)

    start = time.perf_counter()
    if client == "raw":
        await asyncio.gather(*[raw_loop() for _ in range(clients)])
    else:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=30) as http:
            await asyncio.gather(*[httpx_loop(http) for _ in range(clients)])
    load.seconds = time.perf_counter() - start
    return load


async def burst(server: Server, count: int) -> tuple[list[float], list[float], int]:
    """``count`` requests at once, each on its own open connection, written with raw asyncio
    streams (so the client's own overhead does not inflate the times): latencies of the 200s
    and of the 503s (with ``Retry-After``), and the number of other answers."""
    rng = random.Random(1)
    connections = [await asyncio.open_connection(HOST, server.port) for _ in range(count)]
    ok: list[float] = []
    refused: list[float] = []
    other = 0

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal other
        start = time.perf_counter()
        target = f"/recommend?user={rng.choice(server.users)}&k=10"
        status, headers, body = await _exchange(reader, writer, target)
        elapsed = time.perf_counter() - start
        if _answered(status, body):
            ok.append(elapsed)
        elif status == 503 and "retry-after" in headers:
            refused.append(elapsed)
        else:
            other += 1
        writer.close()

    await asyncio.gather(*[one(reader, writer) for reader, writer in connections])
    return ok, refused, other


def report(name: str, load: Load, before: float, after: float) -> None:
    print(
        f"{name:<18} {len(load.latencies):>7,} ok {load.errors:>5} errors  "
        f"{load.rate:>7.1f} req/s  p50 {load.percentile(50):6.1f}  p95 {load.percentile(95):6.1f}  "
        f"p99 {load.percentile(99):6.1f} ms  RSS {before:,.0f} -> {load.rss_at_1000:,.0f} "
        f"(1,000) -> {after:,.0f} MiB"
    )


def movielens_model(model: Path | None) -> Path:
    if model is not None:
        return model
    folder = RESULTS / "serve-ml-latest-small"
    if not (folder / "manifest.json").is_file():
        if not MOVIELENS.is_file():
            raise SystemExit(f"no --model and no MovieLens data at {MOVIELENS}")
        print(f"training a two-stage model (1 epoch per stage) into {folder} ...", flush=True)
        command = [sys.executable, "-m", "crossent", "train", "--data", str(MOVIELENS)]
        command += ["--stage", "ranking", "--epochs", "1", "--out", str(folder)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder


def million_model(items: int, users: int) -> Path:
    """A two-stage checkpoint over ``items`` items with random weights (cached)."""
    folder = RESULTS / f"serve-million-{items}"
    if (folder / "manifest.json").is_file():
        return folder
    import torch

    from crossent.recsys.data.interactions import Interactions
    from crossent.recsys.models.networks import CandidateConfig, CandidateModel
    from crossent.recsys.models.ranker import RankingConfig, RankingModel
    from crossent.recsys.models.ranking_inputs import DENSE_FEATURES
    from crossent.recsys.serving.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    weights = np.arange(1, items + 1, dtype=np.float64) ** -0.8  # Zipf popularity
    cdf = np.cumsum(weights / weights.sum())
    watched = np.searchsorted(cdf, rng.random(users * 20)).clip(0, items - 1)
    watches = Interactions(
        user=np.repeat(np.arange(users), 20),
        item=watched,
        timestamp=np.arange(users * 20),
        rating=None,
        watch_time=None,
        user_ids=np.arange(users),
        item_ids=np.arange(items),
    )
    torch.manual_seed(0)
    candidate = CandidateModel(CandidateConfig(n_items=items, dim=32, history=50))
    ranking = RankingModel(RankingConfig(dim=32, n_dense=len(DENSE_FEATURES)))
    save_checkpoint(folder, candidate, watches, ranking=ranking)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ml-latest-small two-stage checkpoint")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=300, help="time limit per load run")
    parser.add_argument("--unbatched-requests", type=int, default=4_000,
                        help="requests of each round of the batching comparison")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds, batching off then on, for the ratio")
    parser.add_argument("--million-items", type=int, default=1_000_000)
    parser.add_argument("--million-requests", type=int, default=1_500)
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--workers", type=int, default=2, help="the server's --workers")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.unbatched_requests, args.million_requests = 3_000, 1_000, 300
    RESULTS.mkdir(exist_ok=True)
    load_average = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {load_average}")
    print(
        f"python {platform.python_version()}, server torch threads {args.threads}, workers "
        f"{args.workers}, client {args.client} (one process, asyncio)"
    )
    threads = ["--threads", str(args.threads), "--workers", str(args.workers)]
    model = movielens_model(args.model)

    unbatched_options = ("--max-batch", "1", "--max-wait-ms", "0")
    one_worker = ["--threads", str(args.threads), "--workers", "1", *unbatched_options]
    with (
        Server(model, *threads) as server,
        Server(model, *threads, *unbatched_options) as off,
        Server(model, *one_worker) as off_one,
    ):
        before = server.rss()
        batched = asyncio.run(drive(server, args.clients, args.requests, args.seconds, args.client))
        after = server.rss()
        print(f"\n{args.clients} clients, ml-latest-small two-stage ({model})")
        report("batched", batched, before, after)
        drift = (after - batched.rss_at_1000) / batched.rss_at_1000
        print(f"{'':19}RSS after the run vs after 1,000 requests: {drift:+.1%} (target: 10%)")
        # the ratio from alternating rounds on both servers (both up, one loaded at a time):
        # one short run of each swings by a fifth from run to run on 2 cores
        rates: dict[str, list[float]] = {"batched": [], "unbatched": [], "one worker": []}
        for round_ in range(args.rounds):
            for name, target in (("unbatched", off), ("one worker", off_one), ("batched", server)):
                before = target.rss()
                load = asyncio.run(
                    drive(target, args.clients, args.unbatched_requests, args.seconds, args.client)
                )
                rates[name].append(load.rate)
                if round_ == 0 and name != "batched":
                    label = f"unbatched, {args.workers if target is off else 1} wkr"
                    report(label, load, before, target.rss())
    # batching off at its best in each round: the batched server's workers, or one
    best_off = zip(rates["unbatched"], rates.pop("one worker"), strict=True)
    rates["unbatched"] = [max(pair) for pair in best_off]
    ratio = float(np.median(rates["batched"]) / np.median(rates["unbatched"]))
    pairs = zip(rates["batched"], rates["unbatched"], strict=True)
    per_round = ", ".join(f"{fast / slow:.1f}x" for fast, slow in pairs)
    print(
        f"batching: {ratio:.1f}x the throughput of one model call per request (target >= 3x): "
        f"median of {args.rounds} alternating rounds of {args.unbatched_requests:,} requests "
        f"each, {np.median(rates['batched']):.0f} vs {np.median(rates['unbatched']):.0f} req/s "
        f"(per round {per_round})"
    )
    print(
        f"targets: >= 300 req/s {'met' if batched.rate >= 300 else 'MISSED'}, p99 <= 100 ms "
        f"{'met' if batched.percentile(99) <= 100 else 'MISSED'}, 0 errors "
        f"{'met' if batched.errors == 0 else 'MISSED'}, RSS within 10% "
        f"{'met' if abs(drift) <= 0.10 else 'MISSED'}, batching >= 3x "
        f"{'met' if ratio >= 3 else 'MISSED'}"
    )

    options = ("--queue-limit", "8", "--max-batch", "4", "--max-wait-ms", "0")
    with Server(model, *threads, *options) as server:
        ok, refused, other = asyncio.run(burst(server, 200))
    slowest = max(refused) * 1000 if refused else float("nan")
    median = float(np.median(refused)) * 1000 if refused else float("nan")
    print(
        f"\noverload (queue limit 8, a burst of 200): {len(ok)} answered, {len(refused)} got 503 "
        f"with Retry-After (median {median:.1f} ms, slowest {slowest:.1f} ms, target <= 50), "
        f"{other} other"
    )

    if args.skip_million:
        return
    items = 100_000 if args.quick else args.million_items
    folder = million_model(items, 1_000)
    with Server(folder, *threads) as server:
        before = server.rss()
        million = asyncio.run(drive(server, 8, args.million_requests, args.seconds, args.client))
        print(f"\n8 clients, {items:,}-item catalogue, two-stage, random weights")
        report("million", million, before, server.rss())
        peak = server.peak() / 1024
        print(
            f"           p99 {million.percentile(99):.0f} ms (target <= 300), peak RSS "
            f"{peak:.2f} GiB (target < 2)"
        )
    load_average = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nload average at the end: {load_average}")


if __name__ == "__main__":
    main()
