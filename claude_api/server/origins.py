"""Refuses what a web page on another site can make a browser send to this server.

A page may send a `text/plain` or form body to any address without asking first (no CORS
preflight): writes must be `application/json`. A request carrying another site's `Origin` is
refused. And while requests need no API key, only loopback `Host` names are answered: a page whose
own host name now resolves to 127.0.0.1 (DNS rebinding) would otherwise read every answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

from cross_web import parse_content_type
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from claude_api.server.auth import GRAPHQL_PATH, AuthPolicy, is_loopback, route_path
from claude_api.server.responses import refusal

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # methods that change nothing here
JSON = "application/json"
ANY_HOST = "*"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_ECHO = 100  # at most this many characters of a refused header are quoted back


class SameOriginMiddleware:
    """ASGI middleware: 421 for a non-loopback `Host` while `policy` needs no key (unless listed
    in `allowed_hosts`), 415 for a write whose body is not JSON, 403 for an `Origin` that is
    neither the server's own (the `Host` the request was sent to) nor in `allowed_origins`.

    A write without a body or Content-Type (`DELETE /v1/events`) goes on, to its 405 or 400: a
    browser sends a bodyless POST cross-site too, but always with its `Origin`.

    With keys required the `Host` is not checked: a key is a secret the rebinding page does not
    have, and browsers never add a bearer token by themselves, while a server behind a proxy or
    on a public address is reached by names it cannot know.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: AuthPolicy,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        graphql_path: str = GRAPHQL_PATH,
    ) -> None:
        self.app = app
        self.policy = policy
        self.allowed_origins = frozenset(normal_origin(origin) for origin in allowed_origins)
        self.allowed_hosts = frozenset(host.strip().lower() for host in allowed_hosts)
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self.refusal(scope)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        """The answer refusing the request of `scope`, or None to let it through."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        graphql = route_path(scope) == self.graphql_path
        if not self.policy.required(scope) and not self.host_allowed(host):
            message = (
                f"this server needs no API key, so it answers requests addressed to "
                f"localhost, 127.0.0.1 or [::1] only, not to Host {_quoted(host)}; behind a "
                "proxy that other machines reach, require keys (CLAUDE_API_AUTH=required); "
                "else list the host names in CLAUDE_API_ALLOWED_HOSTS"
            )
            status = HTTPStatus.MISDIRECTED_REQUEST
            return refusal(graphql, status, message, code=status.name)
        method = scope["method"]
        content_type = headers.get("content-type")
        if method not in SAFE_METHODS and _has_body(headers) and not is_json(content_type):
            status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            message = f"the body of a {method} request must have Content-Type: {JSON} (UTF-8)"
            return refusal(graphql, status, message, code=status.name)
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host):
            message = (
                f"requests from web pages of other sites are refused (Origin "
                f"{_quoted(origin)}); list the origins allowed to call this server in "
                "CLAUDE_API_ALLOWED_ORIGINS"
            )
            return refusal(graphql, HTTPStatus.FORBIDDEN, message, code="FORBIDDEN")
        return None

    def host_allowed(self, host: str | None) -> bool:
        """Whether a server that needs no key answers a request sent to `host` (any port)."""
        if host is None:
            return True  # HTTP/1.0 without a Host: no browser sends that
        name = host_name(host)
        return is_loopback(name) or name in self.allowed_hosts or ANY_HOST in self.allowed_hosts

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Whether a page of `origin` may call the server, reached at `host`."""
        normal = normal_origin(origin)
        if normal in self.allowed_origins:
            return True
        scheme, separator, authority = normal.partition("://")
        # The page's own server: the authority it sent the request to. The scheme is left out,
        # as a TLS proxy in front changes it and no other server listens on the same port.
        return bool(separator) and host is not None and authority == _authority(host, scheme)


def cors_middleware(allowed_origins: Iterable[str]) -> list[Middleware]:
    """Starlette's CORS middleware answering preflights from `allowed_origins` only; none (CORS
    off) when there are none."""
    origins = sorted({normal_origin(origin) for origin in allowed_origins})
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    ]


def is_json(content_type: str | None) -> bool:
    """Whether a `Content-Type` says JSON in UTF-8 (JSON's only encoding on the wire)."""
    media_type, params = parse_content_type(content_type or "")
    return media_type == JSON and params.get("charset", "utf-8").lower() in ("utf-8", "utf8")


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return (
        (length is not None and length.strip() != "0")
        or "transfer-encoding" in headers
        or "content-type" in headers
    )


def host_name(host: str) -> str:
    """The name of a `Host` value, without its port: `localhost`, `127.0.0.1`, `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


def normal_origin(origin: str) -> str:
    """`origin` lowercased, without a trailing slash or its scheme's default port."""
    origin = origin.strip().lower().rstrip("/")
    scheme, separator, authority = origin.partition("://")
    return f"{scheme}://{_authority(authority, scheme)}" if separator else origin


def _authority(authority: str, scheme: str) -> str:
    authority = authority.strip().lower()
    default = _DEFAULT_PORTS.get(scheme)
    return authority.removesuffix(f":{default}") if default else authority


def _quoted(value: str | None) -> str:
    text = repr(value)
    return text if len(text) <= _ECHO else text[:_ECHO] + "..."
