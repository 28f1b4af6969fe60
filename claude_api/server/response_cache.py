"""Caching at the HTTP edge, for GraphQL and REST alike: an answer made only of cached answers
(`claude_api.models.gateway.recording`) depends on nothing but the request, the caller's
scope and project, and the data; its `ETag` is made of those and the data version it was read
under. A request whose `If-None-Match` names the ETag of its answer now is answered 304.

Beside it, the encoded answers themselves, per ETag, up to a budget of bytes: the same request
asked again before the next write (a dashboard polling without If-None-Match, a script in a
loop) is answered on the event loop, without a worker thread, a session or GraphQL's execution.
`bench.bench_http` measures what that is worth (bench/RESULTS.md, "HTTP throughput").

Nothing that reads the clock, no error, no mutation and nothing that is not a query-layer
answer (budgets, alert rules, tasks) gets an ETag, so none is ever answered from here.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from cachetools import LRUCache
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claude_api.errors import Forbidden
from claude_api.models.gateway import Gateway, recording
from claude_api.server.auth import principal_of
from claude_api.server.limits import replay_body
from claude_api.server.services import Services

STORE_BYTES = 32 * 2**20
LARGEST_STORED = STORE_BYTES // 16
CACHE_CONTROL = (b"cache-control", b"private, no-cache")
# Headers of a stored answer that describe its body; the rest are the request's own.
_STORED_HEADERS = {b"content-type", b"content-length", b"vary"}


@dataclass(frozen=True)
class _Stored:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


class ResponseCacheMiddleware:
    """ETags and 304s for the GETs under `prefixes` and the GraphQL requests at `graphql_path`
    (GET and POST); innermost, so the caller is known (`AuthMiddleware`) and a body is read
    within its limit. A GraphQL answer's ETag depends on `Accept` too (its media type does).

    `store_bytes` bounds the encoded answers kept in this process (0: none, ETags only).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefixes: tuple[str, ...],
        graphql_path: str = "/graphql",
        store_bytes: int = STORE_BYTES,
    ) -> None:
        self.app = app
        self.prefixes = prefixes
        self.graphql_path = graphql_path
        self._store: LRUCache[str, _Stored] | None = None
        if store_bytes:
            self._store = LRUCache(store_bytes, getsizeof=lambda stored: len(stored.body))
        self._largest = min(LARGEST_STORED, store_bytes)
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        path = scope.get("path", "")
        graphql = path == self.graphql_path
        if scope["type"] != "http" or not (
            (method == "GET" and (graphql or path.startswith(self.prefixes)))
            or (method == "POST" and graphql)
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            principal = principal_of(request)
        except Forbidden:  # a public route: nothing of the data in it
            await self.app(scope, receive, send)
            return
        body = b""
        if method == "POST":
            body = await request.body()
            receive = replay_body(body, receive)
        headers = Headers(scope=scope)
        digest = hashlib.blake2b(digest_size=16)
        for part in (
            method,
            path,
            scope["query_string"],
            body,
            headers.get("accept", "") if graphql else "",
            principal.scope.value,
            principal.project_id or "",
        ):
            digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "replace"))
            digest.update(b"\x00")
        request_key = digest.hexdigest()
        gateway: Gateway = _services(scope).gateway
        try:
            version = await gateway.latest_version()
        except SQLAlchemyError:
            version = None  # the request goes the whole way, and reports what is wrong
        if version is not None:
            etag = _etag(version, request_key)
            if etag in _tags(headers.get("if-none-match", "")):
                await _send_not_modified(send, etag, graphql)
                return
            stored = self._found(etag)
            if stored is not None:
                await _send(send, stored, etag)
                return
        await self._answer(scope, receive, send, request_key)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, request_key: str) -> None:
        """Run the request; a 200 made only of cached answers read under one data version gets
        its ETag, and its body is stored when it fits."""
        start: Message | None = None
        chunks: list[bytes] = []
        etag: str | None = None

        async def send_tagged(message: Message) -> None:
            nonlocal start, etag
            if message["type"] == "http.response.start":
                version = record.version
                if message["status"] == 200 and version is not None:
                    etag = _etag(version, request_key)
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"etag", etag.encode()),
                        CACHE_CONTROL,
                    ]
                    start = message
            elif message["type"] == "http.response.body" and etag is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._keep(etag, start, b"".join(chunks))
            await send(message)

        with recording() as record:
            await self.app(scope, receive, send_tagged)

    def _found(self, etag: str) -> _Stored | None:
        if self._store is None:
            return None
        with self._lock:
            return self._store.get(etag)

    def _keep(self, etag: str, start: Message | None, body: bytes) -> None:
        if self._store is None or start is None or len(body) > self._largest:
            return
        headers = tuple(
            (name, value) for name, value in start["headers"] if name.lower() in _STORED_HEADERS
        )
        with self._lock:
            self._store[etag] = _Stored(start["status"], headers, body)


def _services(scope: Scope) -> Services:
    return scope["app"].state.services


def _etag(version: int, request_key: str) -> str:
    return f'"{version:x}-{request_key}"'


def _tags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header (weak ones compare as strong, as RFC 9110
    says for this header)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


async def _send_not_modified(send: Send, etag: str, graphql: bool) -> None:
    headers = [(b"etag", etag.encode()), CACHE_CONTROL]
    if graphql:
        headers.append((b"vary", b"Accept"))
    await send({"type": "http.response.start", "status": 304, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _send(send: Send, stored: _Stored, etag: str) -> None:
    headers = [*stored.headers, (b"etag", etag.encode()), CACHE_CONTROL]
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})
