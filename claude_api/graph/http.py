"""The `/graphql` endpoint: GraphQL over HTTP on Strawberry's ASGI view, and an offline GraphiQL.

`GraphQLApp` speaks both response media types of the GraphQL-over-HTTP spec with their status codes,
answers every malformed request with a JSON error body, and serves GraphiQL from local assets.
"""

from __future__ import annotations

import html
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import partial
from http import HTTPStatus
from os import PathLike, stat_result
from pathlib import Path
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException, parse_content_type
from graphql import GraphQLError, GraphQLSyntaxError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from claude_api.graph.errors import (
    BAD_USER_INPUT,
    INTERNAL_ERROR_MESSAGE,
    INTERNAL_SERVER_ERROR,
    DomainErrors,
    translate_error,
)
from claude_api.graph.limits import MAX_JSON_DEPTH, limit_extensions, nested_deeper
from claude_api.models.gateway import mark_uncacheable

logger = logging.getLogger(__name__)

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
GRAPHIQL_STATIC_URL = "/graphql/static"
STATIC_DIR = Path(__file__).parent / "static"

# Strawberry's GraphiQL page loads these from unpkg; each is served from STATIC_DIR instead, a
# byte-identical copy from the npm package (the page's integrity hashes check that in the browser).
GRAPHIQL_ASSETS: Mapping[str, str] = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js": (
        "react-18.2.0/react.production.min.js"
    ),
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js": (
        "react-dom-18.2.0/react-dom.production.min.js"
    ),
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js-cookie-3.0.5/js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql-3.8.3/graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql-3.8.3/graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css": (
        "graphiql-plugin-explorer-1.0.2/style.css"
    ),
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": (
        "graphiql-plugin-explorer-1.0.2/index.umd.js"
    ),
}
# An src or href whose URL has an authority part (scheme://host or //host): another host.
_EXTERNAL_REFERENCE = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:[a-z][\w+.-]*:)?//""", re.I)

_ALLOWED_METHODS = ("GET", "POST")
_WILDCARD_SPECIFICITY = {"*/*": 0, "application/*": 1}
_EXACT = 2

ContextGetter = Callable[[Request], Awaitable[Any] | Any]


class QueriesOnly(SchemaExtension):
    """Marks the response of anything but a query as one that must not be cached."""

    def on_execute(self) -> Iterator[None]:
        if self.execution_context.operation_type is not OperationType.QUERY:
            mark_uncacheable()
        yield


def schema_extensions(*, cache_size: int = 128) -> list[Callable[[], SchemaExtension]]:
    """Extensions for `strawberry.Schema(..., extensions=...)`: limits on a document's tokens,
    depth and aliases, parse and validation caches, errors, and no cached mutation responses.

    Factories, so every request gets its own extension objects; Strawberry shares the caches
    themselves between requests (keyed by size). `cache_size` bounds the distinct documents kept.
    """
    return [
        *limit_extensions(),
        partial(ParserCache, maxsize=cache_size),
        partial(ValidationCache, maxsize=cache_size),
        DomainErrors,
        QueriesOnly,
    ]


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an `Accept` header with their quality, skipping malformed ones."""
    ranges = []
    for media_range in accept.split(","):
        name, params = parse_content_type(media_range)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            continue
        if name and 0 <= quality <= 1:
            ranges.append((name, quality))
    return ranges


def negotiate_media_type(accept: str | None) -> str | None:
    """The response media type for an `Accept` header, or None when it accepts neither JSON type.

    No header, `*/*` and `application/*` mean `application/json`, which clients written before the
    newer type expect; when both types are named with the same quality the newer one wins.
    """
    if accept is None or not accept.strip():
        return JSON
    # For each type: the quality and the specificity of the most specific range that matches it.
    found: dict[str, tuple[float, int]] = {}
    for name, quality in _media_ranges(accept):
        for candidate in (GRAPHQL_RESPONSE_JSON, JSON):
            specificity = _EXACT if name == candidate else _WILDCARD_SPECIFICITY.get(name, -1)
            if specificity >= 0 and specificity >= found.get(candidate, (0.0, -1))[1]:
                found[candidate] = (quality, specificity)

    def preference(candidate: str) -> tuple[float, int, bool]:
        quality, specificity = found[candidate]
        favourite = GRAPHQL_RESPONSE_JSON if specificity == _EXACT else JSON
        return quality, specificity, candidate == favourite

    acceptable = [candidate for candidate, (quality, _) in found.items() if quality > 0]
    return max(acceptable, key=preference) if acceptable else None


def _accepts_html(accept: str) -> bool:
    return any(name == "text/html" and quality > 0 for name, quality in _media_ranges(accept))


def localize_graphiql_page(page: str, static_url: str) -> str:
    """Strawberry's GraphiQL page with its CDN assets pointed at `static_url` on this service.

    Raises RuntimeError if the page references an asset this package does not ship, as it would
    after a Strawberry upgrade that moves GraphiQL to another version.
    """
    base = html.escape(static_url.rstrip("/"), quote=True)
    for cdn_url, local_path in GRAPHIQL_ASSETS.items():
        if cdn_url not in page:
            raise RuntimeError(f"Strawberry's GraphiQL page no longer loads {cdn_url}")
        page = page.replace(cdn_url, f"{base}/{local_path}")
    if leftover := _EXTERNAL_REFERENCE.search(page):
        raise RuntimeError(
            f"Strawberry's GraphiQL page loads an asset from elsewhere: {leftover.group(0)}"
        )
    return page


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _json_response(
    body: object, status_code: int, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status_code,
        headers=headers,
        media_type=f"{media_type}; charset=utf-8",
    )


def _request_error_code(error: GraphQLError, result: ExecutionResult) -> str:
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if isinstance(result, PreExecutionError):
        return "GRAPHQL_VALIDATION_FAILED"
    # A request error raised once execution began: variable values that do not fit their types.
    return BAD_USER_INPUT


class GraphQLApp(GraphQL[Any, None]):
    """Strawberry's ASGI GraphQL view, made to follow the GraphQL-over-HTTP spec more closely.

    HTTP only (no subscriptions). Mount it with `graphql_routes`, which adds GraphiQL's assets.
    """

    def __init__(
        self,
        schema: BaseSchema,
        *,
        context_getter: ContextGetter | None = None,
        graphiql: bool = True,
        static_url: str = GRAPHIQL_STATIC_URL,
        allow_queries_via_get: bool = True,
    ) -> None:
        """Serve `schema`; `context_getter(request)` (sync or async) makes each request's context.

        The getter runs for every request, the GraphiQL page included: keep it cheap (hand out a
        session factory, not an open session). Without one the context is Strawberry's dict of
        request and response. `static_url` is where `graphiql_static_routes` mounts the assets.
        """
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=allow_queries_via_get,
            subscription_protocols=(),
        )
        self.context_getter = context_getter
        self.static_url = static_url
        self._graphiql_page = get_graphql_ide_html("graphiql") if graphiql else ""
        if graphiql:
            localize_graphiql_page(self._graphiql_page, static_url)  # fail at start-up, not later

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request; every error becomes a JSON body with a GraphQL error in it."""
        if scope["type"] == "websocket":
            # No subscriptions here: closing before accepting refuses the handshake.
            await WebSocket(scope, receive=receive, send=send).close()
            return
        if scope["type"] != "http":
            raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")
        request = Request(scope, receive=receive)
        media_type = negotiate_media_type(request.headers.get("accept"))
        try:
            if (
                media_type is None
                and request.method in _ALLOWED_METHODS
                and not self.should_render_graphql_ide(request)
            ):
                raise HTTPException(
                    406, f"Acceptable response media types: {GRAPHQL_RESPONSE_JSON}, {JSON}."
                )
            response = await self.run(request)
        except HTTPException as exc:
            response = self._error_response(request, exc, media_type or JSON)
        except Exception:
            logger.exception("GraphQL request %s %s failed", request.method, request.url.path)
            body = _error_body(INTERNAL_ERROR_MESSAGE, INTERNAL_SERVER_ERROR)
            response = _json_response(body, 500, media_type or JSON)
        response.headers.add_vary_header("Accept")
        await response(scope, receive, send)

    def _error_response(self, request: Request, exc: HTTPException, media_type: str) -> Response:
        status, code, headers = exc.status_code, None, {}
        cause = exc.__cause__
        if isinstance(cause, InvalidOperationTypeError) and request.method == "GET":
            status, headers = 405, {"Allow": "POST"}
        elif isinstance(cause, CannotGetOperationTypeError):
            # A GraphQL request error (no such operation), not a malformed HTTP request: with
            # application/json the spec wants it served like a validation error, with 200.
            status = 400 if media_type == GRAPHQL_RESPONSE_JSON else 200
            code = "OPERATION_RESOLUTION_FAILURE"
        elif status == 405:
            headers = {"Allow": ", ".join(_ALLOWED_METHODS)}
        if code is None:
            try:
                code = HTTPStatus(status).name
            except ValueError:
                code = "BAD_REQUEST" if 400 <= status < 500 else INTERNAL_SERVER_ERROR
        return _json_response(_error_body(exc.reason, code), status, media_type, headers)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Whether to answer with the GraphiQL page: a GET without a query from a browser.

        Strawberry also sends the page for `Accept: */*`, which would answer a query-less GET from
        curl or a client library with HTML instead of a 400 in JSON.
        """
        return (
            self.graphql_ide is not None
            and request.method == "GET"
            and request.query_params.get("query") is None
            and _accepts_html(request.headers.get("accept", ""))
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        """The GraphiQL page, loading its assets from this service (under the app's root path)."""
        static_url = request.scope.get("root_path", "") + self.static_url
        return HTMLResponse(localize_graphiql_page(self._graphiql_page, static_url))

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Any:
        """The request's context: `context_getter(request)`, awaited if it is a coroutine."""
        if self.context_getter is None:
            return await super().get_context(request, response)
        context = self.context_getter(request)  # type: ignore[arg-type]
        return await context if inspect.isawaitable(context) else context

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """Strawberry's sub-response, carrying the negotiated media type to `create_response`."""
        sub_response = await super().get_sub_response(request)
        # create_response receives no request, so the media type travels on the sub-response.
        sub_response.media_type = negotiate_media_type(request.headers.get("accept")) or JSON
        return sub_response

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Strawberry's parsing, with 415 for other media types and 400 for any malformed body."""
        if request.method == "POST":
            self._check_request_media_type(request.content_type or "")
        try:
            parsed = await super().parse_http_body(request)
        except AttributeError as exc:
            # Strawberry calls .get() on the decoded body, here a JSON string, number or null.
            raise HTTPException(400, "The request body must be a JSON object.") from exc
        for data in parsed if isinstance(parsed, list) else (parsed,):
            if not isinstance(data.operation_name, str | None):
                raise HTTPException(
                    400, "The GraphQL operation's `operationName` must be a string or null."
                )
        return parsed

    def decode_json(self, data: str | bytes) -> object:
        """A request's JSON (a body, or a GET's `variables`), decoded by the standard library as
        Strawberry does (exact integers of any size); 400 when it nests deeper than
        `MAX_JSON_DEPTH` (the decoder itself would raise RecursionError a little deeper)."""
        too_deep = f"The request's JSON nests deeper than {MAX_JSON_DEPTH} levels."
        try:
            value = json.loads(data)
        except RecursionError as exc:
            raise HTTPException(400, too_deep) from exc
        if nested_deeper(value, MAX_JSON_DEPTH):
            raise HTTPException(400, too_deep)
        return value

    def _check_request_media_type(self, content_type: str) -> None:
        media_type, params = parse_content_type(content_type)
        if media_type == "multipart/form-data" and self.multipart_uploads_enabled:
            return
        if media_type != JSON:
            raise HTTPException(415, f"POST requests must have Content-Type: {JSON}.")
        if params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
            raise HTTPException(415, "The request body must be encoded in UTF-8.")

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """The response body: errors translated, and no `data` entry after a request error.

        A request error (parse, validation, variables) stops the operation before execution, and
        the spec says its response has no `data`; field errors always carry a path.
        """
        if not result.errors:
            return await super().process_result(request, result)
        mark_uncacheable()
        errors = [translate_error(error) for error in result.errors]
        request_error = result.data is None and all(error.path is None for error in errors)
        formatted = []
        for error in errors:
            entry = dict(error.formatted)
            if request_error:
                extensions = dict(entry.get("extensions") or {})
                extensions.setdefault("code", _request_error_code(error, result))
                entry["extensions"] = extensions
            formatted.append(entry)
        body: GraphQLHTTPResponse = {"errors": formatted}
        if not request_error:
            body["data"] = result.data
        if result.extensions:
            body["extensions"] = result.extensions
        return body

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """The HTTP response, in the negotiated media type, with the status the spec asks for."""
        media_type = sub_response.media_type or JSON
        status = sub_response.status_code
        if not status and isinstance(response_data, dict) and "data" not in response_data:
            codes = {
                (error.get("extensions") or {}).get("code")
                for error in response_data.get("errors") or ()
                if isinstance(error, dict)
            }
            if INTERNAL_SERVER_ERROR in codes:
                status = 500
            elif media_type == GRAPHQL_RESPONSE_JSON:
                status = 400
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = f"{media_type}; charset=utf-8"
        if status:
            response.status_code = status
        return response

    def encode_json(self, data: object) -> bytes:
        """JSON with orjson, several times faster than the standard library on large results."""
        try:
            return orjson.dumps(data)
        except TypeError:
            # orjson refuses integers beyond 64 bits, which a custom scalar could return.
            return json.dumps(data, separators=(",", ":")).encode()


class _VersionedStaticFiles(StaticFiles):
    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        # Every path names its package's version, so what a URL serves never changes.
        response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def graphiql_static_routes(url: str = GRAPHIQL_STATIC_URL) -> list[BaseRoute]:
    """Routes that serve GraphiQL's assets at `url` (give `GraphQLApp` the same `static_url`)."""
    return [Mount(url, app=_VersionedStaticFiles(directory=STATIC_DIR), name="graphiql-static")]


def graphql_routes(app: GraphQLApp, path: str = "/graphql") -> list[BaseRoute]:
    """The routes of a GraphQL endpoint at `path`: the view, and GraphiQL's assets if it has it."""
    routes: list[BaseRoute] = [Route(path, app, name="graphql")]
    if app.graphql_ide:
        routes += graphiql_static_routes(app.static_url)
    return routes
