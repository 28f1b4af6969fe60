"""HTTP throughput of the leaderboard over GraphQL and over REST, against a bare route of the
same app that returns the same JSON bytes (the ceiling).

    python -m bench.bench_http [--events 100000] [--duration 10] [--connections 10]
                               [--database-url URL] [--stub-query] [--no-store]

One uvicorn worker serves the app on loopback (auth off) from a database filled with
`claude-api demo` data; the load comes from wrk (`apt-get install wrk` on Debian and Ubuntu,
`brew install wrk` on macOS) with keep-alive connections. Without wrk, a Python client (asyncio
and httpx, in a process of its own) makes the load; it saturates well below the ceiling, so its
figures only bound the ratios. On a machine with two cores or more the server runs on the first
and the load generator on the second.

Every request of a load is the same question (without If-None-Match) and no write happens
while it runs, so past the first each is answered from the encoded answer the HTTP edge stored
under its ETag (`claude_api.server.response_cache`): the figures are those of a dashboard
polling an unchanged database. What an answer costs to compute is the "query layer alone"
line, and `bench.bench_queries`.

`--stub-query` measures the HTTP stack in isolation: the query layer's `leaderboard`, which both
endpoints call, is replaced by a function that returns its answer computed once beforehand. The
figures then say what parsing, validation, sessions, middleware and encoding cost per request;
they are labelled as such, and the default run stays real. The stand-in keeps no answers, so
no response is stored either: every request goes the whole way, as a first one does.

The "revalidation" lines send the answer's ETag in If-None-Match, as a browser or a polling
client that keeps what it was sent does: each is answered 304 without a body. `--no-store`
measures the edge with ETags only, no stored answers: what a request without If-None-Match
costs when it goes through the gateway's answer cache, a worker thread and the encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from bench.bench_queries import fill_demo
from bench.bench_tracking import fresh_database
from claude_api.config import Settings
from claude_api.events import Kind
from claude_api.models import queries
from claude_api.models.db import make_engine
from claude_api.models.filters import LeaderboardMetric, UsageFilter
from claude_api.models.results import LeaderboardEntry
from claude_api.server.app import create_app
from claude_api.server.response_cache import ResponseCacheMiddleware

HOST = "127.0.0.1"
CEILING_PATH = "/bench/ceiling"
REST_PATH = "/v1/agents/leaderboard?by=usage&limit=10"
GRAPHQL_QUERY = (
    "query Leaderboard { leaderboard(kind: AGENT, by: USAGE, limit: 10) "
    "{ rank kind name metric value invocations } }"
)
WRK_INSTALL = "apt-get install wrk (Debian, Ubuntu) or brew install wrk (macOS)"
JSON_HEADERS = {"Content-Type": "application/json"}
TARGETS = {"GraphQL leaderboard": 0.5, "REST leaderboard": 0.7}


@dataclass(frozen=True)
class Load:
    """What one endpoint is asked: method, path and body."""

    label: str
    method: str
    path: str
    body: bytes | None = None
    etag: str | None = None  # sent as If-None-Match


@dataclass(frozen=True)
class Result:
    requests_per_second: float
    latency: str  # as the load generator reports it
    errors: int


def pin(cpu: int) -> None:
    """Run this thread (and the threads it starts) on one CPU, when there are two or more."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {cpu})


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """One uvicorn worker in a thread of this process, on a free loopback port."""
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says TCP, and without it each response waits for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    config = uvicorn.Config(app, log_config=None, access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://{HOST}:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise SystemExit("uvicorn did not start")
            time.sleep(0.01)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def wrk(base_url: str, load: Load, *, seconds: float, connections: int) -> Result:
    """Keep `connections` keep-alive connections busy for `seconds` with wrk (one thread)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f"wrk.method = {json.dumps(load.method)}\n")
        if load.body is not None:
            script.write(f"wrk.body = {json.dumps(load.body.decode())}\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
        if load.etag is not None:
            script.write(f'wrk.headers["If-None-Match"] = {json.dumps(load.etag)}\n')
    try:
        command = [
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "-s", script.name, base_url + load.path,
        ]  # fmt: skip
        output = subprocess.run(
            command, capture_output=True, text=True, check=True, preexec_fn=lambda: pin(1)
        ).stdout
    finally:
        Path(script.name).unlink()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise SystemExit(f"wrk printed no rate:\n{output}")
    errors = sum(
        int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors):.*?(\d+)", output)
    )
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    latency = f"p50 {percentiles.get('50', '?')}, p99 {percentiles.get('99', '?')}"
    return Result(float(rate.group(1)), latency, errors)


def python_client(base_url: str, load: Load, *, seconds: float, connections: int) -> Result:
    """The same load from asyncio and httpx in a process of its own (no wrk)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        done, latencies, errors = pool.apply(_python_load, (base_url, load, seconds, connections))
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
    p99 = latencies[int(0.99 * len(latencies))] * 1000 if latencies else float("nan")
    return Result(done / seconds, f"p50 {p50:.2f}ms, p99 {p99:.2f}ms", errors)


def _python_load(
    base_url: str, load: Load, seconds: float, connections: int
) -> tuple[int, list[float], int]:
    pin(1)

    async def run() -> tuple[int, list[float], int]:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=base_url, limits=limits) as client:
            stop = time.monotonic() + seconds

            async def worker() -> None:
                nonlocal errors
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    headers = dict(JSON_HEADERS)
                    if load.etag is not None:
                        headers["If-None-Match"] = load.etag
                    response = await client.request(
                        load.method, load.path, content=load.body, headers=headers
                    )
                    latencies.append(time.perf_counter() - started)
                    errors += response.status_code >= 400

            await asyncio.gather(*(worker() for _ in range(connections)))
        return len(latencies), latencies, errors

    return asyncio.run(run())


def query_alone(engine_url: str, repeat: int = 200) -> float:
    """Median milliseconds of the leaderboard's query-layer call alone, in a fresh session."""
    engine = make_engine(engine_url)
    times = []
    try:
        for _ in range(repeat + 1):
            started = time.perf_counter()
            with Session(engine) as session:
                queries.leaderboard(
                    session,
                    filter=UsageFilter(kind=Kind.AGENT),
                    metric=LeaderboardMetric.USAGE,
                    limit=10,
                )
            times.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return statistics.median(times[1:]) * 1000


@contextmanager
def stubbed_leaderboard(engine_url: str) -> Iterator[None]:
    """Replace `queries.leaderboard` with a constant: the benchmark's answer, computed once."""
    engine = make_engine(engine_url)
    try:
        with Session(engine) as session:
            answer = queries.leaderboard(
                session,
                filter=UsageFilter(kind=Kind.AGENT),
                metric=LeaderboardMetric.USAGE,
                limit=10,
            )
    finally:
        engine.dispose()
    real: Callable[..., object] = queries.leaderboard

    def constant(session: Session, **_arguments: object) -> list[LeaderboardEntry]:
        return answer

    queries.leaderboard = constant  # type: ignore[assignment]
    try:
        yield
    finally:
        queries.leaderboard = real  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite temp file)")
    parser.add_argument(
        "--stub-query",
        action="store_true",
        help="isolation measurement: the query layer's leaderboard returns a precomputed answer",
    )
    parser.add_argument(
        "--no-store",
        action="store_true",
        help="isolation measurement: ETags only, no encoded answers stored at the HTTP edge",
    )
    args = parser.parse_args()

    if shutil.which("wrk"):
        generate, generator = wrk, "wrk (1 thread)"
    else:
        print(f"wrk not found; install it for figures not bound by the client: {WRK_INSTALL}")
        generate, generator = python_client, "Python asyncio + httpx (1 process)"
    pin(0)
    with fresh_database(args.database_url) as engine:
        filled = fill_demo(engine, args.events, end=datetime.now(UTC))
        url = engine.url.render_as_string(hide_password=False)
        backend = engine.dialect.name
        # No rate limits: the load comes from one address, many times faster than they allow.
        # Raw rows are kept: the demo spans more days than the default retention, and a purge
        # during the run would change what is measured.
        settings = Settings(database_url=url, auth="off", rate_limit="off", retention_days=0)
        app = create_app(settings, bind_host=HOST)
        ceiling_body: list[bytes] = []  # the REST answer, once the server has given it

        async def ceiling(request: Request) -> Response:
            return Response(ceiling_body[0], media_type="application/json")

        app.router.add_route(CEILING_PATH, ceiling, methods=["GET"])
        if args.no_store:
            for middleware in app.user_middleware:
                if middleware.cls is ResponseCacheMiddleware:
                    middleware.kwargs["store_bytes"] = 0
        stub = stubbed_leaderboard(url) if args.stub_query else nullcontext()
        with stub, serve(app) as base_url:
            rest = httpx.get(base_url + REST_PATH)
            rest.raise_for_status()
            ceiling_body.append(rest.content)
            body = json.dumps({"query": GRAPHQL_QUERY}).encode()
            graphql = httpx.post(base_url + "/graphql", content=body, headers=JSON_HEADERS)
            graphql.raise_for_status()
            if "errors" in graphql.json():
                raise SystemExit(f"the GraphQL query failed: {graphql.text}")
            loads = [
                Load("ceiling (bare route)", "GET", CEILING_PATH),
                Load("REST leaderboard", "GET", REST_PATH),
                Load("GraphQL leaderboard", "POST", "/graphql", body),
            ]
            if "etag" in rest.headers and "etag" in graphql.headers:
                loads += [
                    Load("REST revalidation", "GET", REST_PATH, etag=rest.headers["etag"]),
                    Load("GraphQL revalidation", "POST", "/graphql", body, graphql.headers["etag"]),
                ]
            results = {}
            for load in loads:
                warm_up = min(2.0, args.duration)
                generate(base_url, load, seconds=warm_up, connections=args.connections)
                results[load.label] = generate(
                    base_url, load, seconds=args.duration, connections=args.connections
                )
        alone = query_alone(url)

    if args.no_store:
        print("ISOLATION MEASUREMENT (--no-store): ETags only, no answers stored at the HTTP edge")
    if args.stub_query:
        print(
            "ISOLATION MEASUREMENT (--stub-query): the query layer's leaderboard returned a "
            "precomputed answer; these figures are the HTTP stack's own costs, not the service's"
        )
    print(
        f"backend: {backend}, {args.events:,} demo events (filled at "
        f"{args.events / filled.seconds:,.0f} events/s); one uvicorn worker; load: {generator}, "
        f"{args.connections} connections, {args.duration:.0f} s per endpoint; "
        f"response {len(ceiling_body[0]):,} bytes"
    )
    top = results["ceiling (bare route)"].requests_per_second
    for label, result in results.items():
        share = result.requests_per_second / top
        target = f"  (target >= {TARGETS[label]:.0%})" if label in TARGETS else ""
        errors = f"  {result.errors} ERRORS" if result.errors else ""
        print(
            f"{label:22} {result.requests_per_second:10,.0f} req/s  {share:6.1%} of the ceiling"
            f"  {result.latency}{target}{errors}"
        )
    print(
        f"{'query layer alone':22} {alone:10.2f} ms per leaderboard "
        f"(at most {1000 / alone:,.0f} calls/s on one core)"
    )


if __name__ == "__main__":
    main()
