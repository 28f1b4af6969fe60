"""The dashboard: its pages and assets, and `GET /dashboard/version`, with which an open page
learns cheaply that the data changed (an ETag poll answered 304 while nothing did)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from claude_api.dashboard import FILES, STATIC_URL
from claude_api.errors import Forbidden
from claude_api.models.keys import Scope
from claude_api.server.auth import principal_of
from claude_api.server.responses import JSONResponse, forbidden, problem
from claude_api.server.services import Services

VERSION_PATH = "/dashboard/version"
INDEX = FILES / "index.html"

# The page loads nothing but its own files and talks to nothing but its own server.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def dashboard_routes() -> list[BaseRoute]:
    """The routes of the dashboard: every page (one HTML shell; its script draws the page the
    path names), the assets and the data version. None of them is part of the REST API, so the
    OpenAPI document leaves them out."""
    pages = ["/", "/tasks", "/agents/{name:path}", "/skills/{name:path}", "/tasks/{id:path}"]
    return [
        *(Route(path, page, methods=["GET", "HEAD"], include_in_schema=False) for path in pages),
        Route(VERSION_PATH, data_version, methods=["GET"], include_in_schema=False),
        Mount(STATIC_URL, app=_Assets(directory=FILES), name="dashboard-static"),
    ]


async def page(request: Request) -> Response:
    """The dashboard's HTML shell."""
    return FileResponse(INDEX, headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})


async def data_version(request: Request) -> Response:
    """`{"version": "<token>"}`, the data version now, as the ETag too: a request whose
    `If-None-Match` names the current version is answered 304 with no body. Needs read scope.

    The token says only that some data changed, not which: a project-bound key learns that
    something was written, never what.
    """
    try:
        principal_of(request).require(Scope.READ)
    except Forbidden as error:
        return forbidden(error)
    services: Services = request.app.state.services
    try:
        version = await services.latest_version()
    except SQLAlchemyError as error:
        return problem(503, f"the database did not answer: {type(error).__name__}")
    token = "none" if version is None else format(version, "x")
    headers = {"ETag": f'"{token}"', "Cache-Control": "no-cache"}
    if f'"{token}"' in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return JSONResponse({"version": token}, headers=headers)


def _etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header (weak ones compare as strong, as RFC 9110
    says for this header)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


class _Assets(StaticFiles):
    """The dashboard's files, revalidated on every load (ETag and Last-Modified answer 304), so a
    new version of the service is seen at once."""

    def file_response(self, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers.update(SECURITY_HEADERS)
        return response
