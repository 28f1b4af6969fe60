"""Authentication with API keys sent as bearer tokens (`Authorization: Bearer cc_...`).

When it is on, every route but the public ones (health, the OpenAPI document, the GraphiQL page,
the dashboard's pages, and their assets) needs a valid key: the middleware answers 401 without one
and otherwise puts the caller's `Principal` on `request.state`; handlers and resolvers check its
scope and project.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from claude_api.access import FULL_ACCESS, Principal
from claude_api.config import Settings
from claude_api.dashboard import is_public as is_dashboard_page
from claude_api.errors import Forbidden
from claude_api.graph.http import GRAPHIQL_STATIC_URL
from claude_api.models.db import write_engine
from claude_api.models.keys import InvalidKey, KeyInfo, hash_key, touch_key, verify_key
from claude_api.server.responses import refusal

logger = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json"})
GRAPHQL_PATH = "/graphql"
REALM = 'Bearer realm="claude-api"'
LAST_USED_RESOLUTION = timedelta(minutes=1)  # `last_used_at` is rewritten at most this often
MAX_KEY_LENGTH = 200  # a longer Authorization value is not one of our keys: no lookup
STATE_KEY = "principal"


def is_loopback(host: str | None) -> bool:
    """Whether `host` (an address or `localhost`) is reachable from this machine only."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AuthPolicy:
    """When requests need an API key: `mode` is the `auth` setting; in `auto` a key is needed
    unless the server binds to loopback only (one user on this machine).

    Without a known `bind_host` (an app not started by `claude-api serve`), `auto` decides per
    connection by the local address it arrived on, so a connection from another machine always
    needs a key. A reverse proxy on the same machine arrives from loopback: set `required` then.
    """

    mode: str = "auto"
    bind_host: str | None = None

    @classmethod
    def of(cls, settings: Settings, bind_host: str | None = None) -> AuthPolicy:
        """The policy of `settings` for a server bound to `bind_host`.

        Raises ValueError for `auth=off` on a non-loopback bind, unless the settings allow it.
        """
        if (
            settings.auth == "off"
            and bind_host is not None
            and not is_loopback(bind_host)
            and not settings.allow_public_without_auth
        ):
            raise ValueError(
                f"CLAUDE_API_AUTH=off would let anyone who reaches {bind_host} read and write "
                "the analytics; bind to 127.0.0.1, use API keys, or set "
                "CLAUDE_API_ALLOW_PUBLIC_WITHOUT_AUTH=1 if a gateway authenticates requests"
            )
        return cls(mode=settings.auth, bind_host=bind_host)

    def required(self, scope: Scope) -> bool:
        """Whether the request of ASGI `scope` needs an API key."""
        if self.mode != "auto":
            return self.mode == "required"
        if self.bind_host is not None:
            return not is_loopback(self.bind_host)
        server = scope.get("server")
        return not (server and is_loopback(server[0]))


class KeyVerifier:
    """Checks presented keys against the database, trusting a verified key for `ttl` seconds
    (so a revoked key stops working within `ttl`); invalid keys are never cached."""

    def __init__(self, engine: Engine, *, ttl: float, max_entries: int = 1024) -> None:
        self.engine = engine
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, KeyInfo]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> KeyInfo | None:
        """The key's record if it was verified less than `ttl` seconds ago."""
        with self._lock:
            found = self._cache.get(hash_key(key))
        return found[1] if found and found[0] > time.monotonic() else None

    def verify(self, key: str) -> KeyInfo:
        """The record of a valid key; InvalidKey otherwise. Blocking: call it in a thread."""
        known = self.cached(key)
        if known is not None:
            return known
        with Session(self.engine) as session:
            info = verify_key(session, key)
        if self.ttl > 0:
            self._remember(key, info)
        self._note_use(info)
        return info

    def _remember(self, key: str, info: KeyInfo) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
            self._cache[hash_key(key)] = (now + self.ttl, info)

    def _note_use(self, info: KeyInfo) -> None:
        now = datetime.now(UTC)
        if info.last_used_at is not None and now - info.last_used_at < LAST_USED_RESOLUTION:
            return
        # Best effort: a database that cannot take this write must not refuse a valid key.
        try:
            with Session(write_engine(self.engine)) as session:
                touch_key(session, info.key_id, at=now)
                session.commit()
        except Exception as error:
            logger.warning("could not note the use of API key %s: %s", info.prefix, error)


class AuthMiddleware:
    """ASGI middleware: the caller's `Principal` on `request.state` (full access when the policy
    needs no key), 401 for a request that needs a key and has no valid one.

    The verifier is `scope["app"].state.services.key_verifier`, there once the app started.
    """

    def __init__(self, app: ASGIApp, *, policy: AuthPolicy, graphql_path: str = GRAPHQL_PATH):
        self.app = app
        self.policy = policy
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.policy.required(scope):
            state[STATE_KEY] = FULL_ACCESS
        elif self._is_public(scope):
            state[STATE_KEY] = None
        else:
            principal, missing = await self._authenticate(scope)
            if principal is None:
                await self._refuse(scope, missing)(scope, receive, send)
                return
            state[STATE_KEY] = principal
        await self.app(scope, receive, send)

    def _is_public(self, scope: Scope) -> bool:
        path = route_path(scope)
        if path in PUBLIC_PATHS or path.startswith(GRAPHIQL_STATIC_URL + "/"):
            return True
        if is_dashboard_page(scope["method"], path):
            return True
        # GET /graphql without a query runs nothing: it is the GraphiQL page (or a 400).
        return (
            path == self.graphql_path
            and scope["method"] in ("GET", "HEAD")
            and "query" not in QueryParams(scope.get("query_string", b""))
        )

    async def _authenticate(self, scope: Scope) -> tuple[Principal | None, bool]:
        """The caller, or None and whether the key was missing (rather than invalid)."""
        header = Headers(scope=scope).get("authorization")
        scheme, _, key = (header or "").partition(" ")
        key = key.strip()
        if header is None:
            reason, key_id = "no Authorization header", None
        elif scheme.lower() != "bearer" or not key:
            reason, key_id = "not a bearer token", None
        elif len(key) > MAX_KEY_LENGTH:
            reason, key_id = "malformed key", None
        else:
            verifier: KeyVerifier = scope["app"].state.services.key_verifier
            try:
                info = verifier.cached(key) or await run_in_threadpool(verifier.verify, key)
            except InvalidKey as error:
                reason, key_id = error.reason, error.key_id
            else:
                return Principal.of_key(info), False
        client = scope.get("client")
        # Never the key itself: at most its public id. The path is quoted: it is the client's.
        logger.warning(
            "authentication failed: %s %r from %s: %s%s",
            scope["method"],
            route_path(scope),
            client[0] if client else "unknown",
            reason,
            f" (key cc_{key_id})" if key_id else "",
        )
        return None, header is None

    def _refuse(self, scope: Scope, missing: bool) -> Response:
        if missing:
            message = "an API key is required: send Authorization: Bearer cc_..."
            challenge = REALM
        else:
            message = "the API key is invalid or revoked"
            challenge = f'{REALM}, error="invalid_token"'
        return refusal(
            route_path(scope) == self.graphql_path,
            401,
            message,
            code="UNAUTHENTICATED",
            headers={"WWW-Authenticate": challenge},
        )


def route_path(scope: Scope) -> str:
    """The request's path within the app (without the `root_path` it is mounted at)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def principal_of(request: Request) -> Principal:
    """The caller the auth middleware found.

    An app composed without `AuthMiddleware` has no authentication, like any Starlette app:
    its callers have full access. A public route has no caller: Forbidden, should it ask.
    """
    state: dict[str, Any] = request.scope.get("state") or {}
    if STATE_KEY not in state:
        return FULL_ACCESS
    principal = state[STATE_KEY]
    if principal is None:
        raise Forbidden("this route is public and carries no credentials")
    return principal


def auth_status(request: Request) -> str:
    """`required` or `off`: whether this request's route would need an API key."""
    policy: AuthPolicy | None = getattr(request.app.state, "auth_policy", None)
    return "required" if policy is not None and policy.required(request.scope) else "off"
