"""The routes of budgets and alert rules under /v1, and their part of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from claude_api.server import alert_routes, budget_routes, endpoints
from claude_api.server.endpoints import Endpoint


def guardrail_endpoints() -> list[Endpoint]:
    """Every budget and alert endpoint, in routing order."""
    return [*budget_routes.ENDPOINTS, *alert_routes.ENDPOINTS]


def guardrail_routes() -> list[BaseRoute]:
    """Their routes. The app must set `app.state.services` before serving a request."""
    return list(endpoints.routes(guardrail_endpoints()))


def schema_types() -> list[tuple[Any, str]]:
    """The types the OpenAPI document must define for them, with their modes."""
    return endpoints.schema_types(guardrail_endpoints())


def openapi_paths(ref: Any, problem_ref: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Their OpenAPI path items."""
    return endpoints.openapi_paths(guardrail_endpoints(), ref, problem_ref)
