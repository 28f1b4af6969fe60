"""The Starlette app: `/graphql` (with GraphiQL), the REST shims, event ingest and health; and
the daily purge of invocations past their retention, the alert evaluator and the warm-up of the
dashboard's first views."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from claude_api.config import Settings
from claude_api.graph.http import GraphQLApp, graphql_routes
from claude_api.graph.schema import build_schema
from claude_api.models.db import current_revision, head_revision
from claude_api.models.retention import prepare_partitions, purge
from claude_api.server.alerting import AlertEvaluator
from claude_api.server.auth import AuthMiddleware, AuthPolicy, auth_status
from claude_api.server.context import RequestContext
from claude_api.server.dashboard import dashboard_routes
from claude_api.server.export_routes import export_routes
from claude_api.server.guardrails import guardrail_routes
from claude_api.server.ingest import post_events
from claude_api.server.limits import BodyLimitMiddleware
from claude_api.server.origins import SameOriginMiddleware, cors_middleware
from claude_api.server.rate_limits import rate_limit_middleware
from claude_api.server.response_cache import ResponseCacheMiddleware
from claude_api.server.responses import JSONResponse, problem
from claude_api.server.rest import PATH_PREFIXES, rest_routes
from claude_api.server.services import Services
from claude_api.server.tasks import post_task
from claude_api.server.warming import ViewWarmer, local_zone_name

logger = logging.getLogger(__name__)

PURGE_DELAY_SECONDS = 60.0  # the first purge, once the server has settled after its start
PURGE_INTERVAL_SECONDS = 24 * 3600.0


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    bind_host: str | None = None,
    purge_delay: float = PURGE_DELAY_SECONDS,
    purge_interval: float = PURGE_INTERVAL_SECONDS,
) -> Starlette:
    """The app; it opens the database and runs migrations when it starts, unless `services`
    (already started) are given.

    `bind_host` is the address the server listens on: with `auth=auto`, API keys are required
    unless it is loopback (unknown, each connection's local address decides). Raises ValueError
    for `auth=off` on a non-loopback address, unless the settings allow it.

    While it runs, the app purges invocations past the settings' retention `purge_delay`
    seconds after it starts, then every `purge_interval` seconds.
    """
    settings = settings or Settings()
    policy = AuthPolicy.of(settings, bind_host)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started = services or await run_in_threadpool(Services.start, settings)
        app.state.services = started
        freeze_startup_objects()
        stopping = asyncio.Event()
        purging = asyncio.create_task(
            purge_periodically(
                started, delay=purge_delay, interval=purge_interval, stopping=stopping
            )
        )
        alerting = asyncio.create_task(AlertEvaluator(started).run(stopping))
        background = [purging, alerting]
        if settings.dashboard_warm_up:
            zones = settings.time_zones or [local_zone_name()]
            app.state.warmer = ViewWarmer(started.gateway, schema, zones)
            background.append(asyncio.create_task(app.state.warmer.run(stopping)))
        try:
            yield
        finally:
            stopping.set()
            # A purge stops after the batch under way, a warm-up before its next request:
            # both before the engine is closed.
            for task in background:
                await task
            if services is None:
                await run_in_threadpool(started.close)

    schema = build_schema()
    graphql = GraphQLApp(schema, context_getter=RequestContext.of)
    routes = [
        *graphql_routes(graphql),
        *rest_routes(),
        *export_routes(),
        *guardrail_routes(),
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/v1/task", post_task, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
        *dashboard_routes(),
    ]
    # What a web page on another site sends is refused first, then a caller over its rate
    # limits, before anything is read; then authentication, so a caller without a key cannot
    # make the server read a large body; innermost, the ETags of the answers (and 304s), which
    # depend on the caller.
    middleware = [
        *cors_middleware(settings.allowed_origins),
        Middleware(
            SameOriginMiddleware,
            policy=policy,
            allowed_origins=settings.allowed_origins,
            allowed_hosts=settings.allowed_hosts,
        ),
        *rate_limit_middleware(settings.rate_limit, policy),
        Middleware(AuthMiddleware, policy=policy),
        Middleware(
            BodyLimitMiddleware,
            limit=settings.max_body_bytes,
            per_path={"/v1/events": settings.max_events_body_bytes},
        ),
        Middleware(ResponseCacheMiddleware, prefixes=PATH_PREFIXES),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    app.state.auth_policy = policy
    return app


def freeze_startup_objects() -> None:
    """Move what exists once the server has started (modules, schema, engine: over a hundred
    thousand objects) out of the cyclic garbage collector's reach, once per process.

    Each full collection otherwise walks them all: a pause of 100-200 ms every few seconds under
    load, which stalls every request in flight. Garbage is collected first, so none is kept.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


async def purge_periodically(
    services: Services, *, delay: float, interval: float, stopping: asyncio.Event
) -> None:
    """Purge after `delay` seconds, then every `interval`, in a worker thread, until `stopping`
    is set; a purge under way then stops after its current batch. A failure is logged and the
    purge tried again at the next interval. Does nothing when both retentions keep everything,
    except on PostgreSQL, where the purge also creates the coming months' partitions (as this
    does first, at the start).
    """
    settings = services.settings
    partitioned = services.engine.dialect.name == "postgresql"
    if partitioned:
        await asyncio.to_thread(prepare_partitions, services.engine)
    if not settings.retention_days and not settings.rollup_retention_days and not partitioned:
        return
    wait = delay
    while not await _set_within(stopping, wait):
        wait = interval
        try:
            result = await asyncio.to_thread(
                purge,
                services.engine,
                raw_retention_days=settings.retention_days,
                rollup_retention_days=settings.rollup_retention_days,
                stop=stopping.is_set,  # a flag read from the worker thread; the GIL guards it
            )
        except Exception:
            logger.exception("purge failed; trying again in %.0f s", interval)
            continue
        if result.skipped:
            continue  # another server on the same database is purging it (logged by purge)
        if result.stopped:
            logger.info("the purge stopped early: the server is stopping")


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds`."""
    with suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
    return event.is_set()


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own errors (no such route, method not allowed) as JSON, like every other."""
    assert isinstance(error, HTTPException)
    response = problem(error.status_code, str(error.detail))
    response.headers.update(error.headers or {})
    return response


async def health(request: Request) -> Response:
    """Whether the database answers and its schema is the one this version expects, and
    whether requests need an API key (`auth`: required or off)."""
    services: Services = request.app.state.services
    auth = auth_status(request)

    def check() -> dict[str, object]:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"schema_version": current_revision(services.engine)}

    try:
        found = await services.run(check)
    except Exception as error:
        body = {
            "status": "unavailable",
            "database": "unreachable",
            "error": type(error).__name__,
            "auth": auth,
        }
        return JSONResponse(body, status_code=503)
    expected = head_revision()
    current = found["schema_version"]
    status, code = ("ok", 200) if current == expected else ("schema outdated", 503)
    body = {
        "status": status,
        "database": services.engine.dialect.name,
        "schema_version": current,
        "expected_schema_version": expected,
        "auth": auth,
    }
    return JSONResponse(body, status_code=code)
