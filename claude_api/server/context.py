"""The GraphQL context of one HTTP request: the app's services, the caller and the deadline of
the request's reads."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.requests import Request

from claude_api.access import Principal
from claude_api.models.gateway import Gateway
from claude_api.server.auth import principal_of
from claude_api.server.services import Services
from claude_api.tracking import Tracker


@dataclass(frozen=True)
class RequestContext:
    """What resolvers get (`GraphContext`): made per request, cheaply, without a query."""

    services: Services
    request: Request
    deadline: float  # a time.monotonic() value, shared by every field of the request

    @classmethod
    def of(cls, request: Request) -> RequestContext:
        """The context of `request` (the app must have started its services)."""
        services: Services = request.app.state.services
        return cls(services=services, request=request, deadline=services.query_deadline())

    @property
    def gateway(self) -> Gateway:
        return self.services.gateway

    @property
    def tracker(self) -> Tracker:
        return self.services.tracker

    @property
    def engine(self) -> Engine:
        """The database, for mutations that write outside the tracker (budgets, alert rules)."""
        return self.services.engine

    @property
    def principal(self) -> Principal:
        """The caller; Forbidden on a public request (the GraphiQL page), which runs nothing."""
        return principal_of(self.request)
