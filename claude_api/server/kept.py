"""Responses kept beside the query layer's answers: a request asked again by a caller of the same
scope and project, before the data changed, is answered with the bytes it was answered with.

Only a response whose every answer was a kept one is kept (`claude_api.models.queries._cache`),
under the one data version those answers were read under; so nothing that reads the clock, and
no error, is ever kept.
"""

from __future__ import annotations

from collections.abc import Hashable

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from claude_api.errors import Forbidden
from claude_api.models.queries._cache import Record, keep_response, kept_response
from claude_api.server.auth import principal_of
from claude_api.server.services import Services


class KeptResponses:
    """Finds and keeps encoded responses of the app's requests (`app.state.services` set)."""

    async def find(self, request: Request, key: Hashable) -> bytes | None:
        """The body kept for `key` and the request's caller under the data version now."""
        scoped = _scoped(request, key)
        if scoped is None:
            return None
        services: Services = request.app.state.services
        try:
            version = await services.latest_version()
        except SQLAlchemyError:
            return None  # the request goes the whole way, and reports what is wrong
        if version is None:
            return None
        return kept_response(services.engine, scoped, version)

    def keep(self, request: Request, key: Hashable, body: bytes, record: Record) -> None:
        """Keep `body`, the successful response to `key` for the request's caller, if
        `record` says each answer in it was a kept one, read under one data version."""
        scoped = _scoped(request, key)
        if scoped is not None:
            services: Services = request.app.state.services
            keep_response(services.engine, scoped, body, record)


def _scoped(request: Request, key: Hashable) -> Hashable | None:
    """`key` for the request's caller: its scope and project (None on a public route)."""
    try:
        principal = principal_of(request)
    except Forbidden:
        return None
    return (key, principal.scope, principal.project_id)
