"""Request body size limits: a body larger than its route allows is refused with 413 before any
handler reads it, whether it declares its length or arrives in chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claude_api.server.auth import GRAPHQL_PATH, route_path
from claude_api.server.responses import refusal

TOO_LARGE = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class BodyLimitMiddleware:
    """ASGI middleware that reads each request's body, at most `limit` bytes of it (`per_path`
    overrides the limit of some paths), and hands it to the app; a larger body gets a 413.

    Every handler here reads its whole body anyway, so holding it first costs no memory more.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        per_path: Mapping[str, int] | None = None,
        graphql_path: str = GRAPHQL_PATH,
    ) -> None:
        self.app = app
        self.limit = limit
        self.per_path = dict(per_path or {})
        self.graphql_path = graphql_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        limit = self.per_path.get(path, self.limit)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(path, limit)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its whole body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(path, limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replay_body(b"".join(chunks), receive), send)

    def _refuse(self, path: str, limit: int) -> Response:
        message = f"the request body is larger than {limit:,} bytes, the limit of {path}"
        # The rest of the body is not read: the connection cannot carry another request.
        headers = {"Connection": "close"}
        return refusal(
            path == self.graphql_path, TOO_LARGE, message, code=TOO_LARGE.name, headers=headers
        )


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` in one message, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
