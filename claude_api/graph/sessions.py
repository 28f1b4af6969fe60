"""The database work of the resolvers that are not analytics (budgets, alert rules): run on the
read gateway's worker threads for a caller allowed to do it, reads in a read session, writes
committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlmodel import Session
from strawberry.types import Info

from claude_api.models.db import write_engine
from claude_api.models.gateway import mark_uncacheable
from claude_api.models.keys import Scope

T = TypeVar("T")


async def read(info: Info, work: Callable[[Session, str | None], T]) -> T:
    """`work(session, project)` in a worker thread for a caller allowed to read; `project` is
    the one its key is bound to (None: every project)."""
    context = info.context
    principal = context.principal
    principal.require(Scope.READ)
    mark_uncacheable()  # these answers change without a data version change, or with the time

    def run() -> T:
        with context.gateway.session(deadline=context.deadline) as session:
            return work(session, principal.project_id)

    return await context.gateway.run(run)


async def write(info: Info, work: Callable[[Session, Any], T]) -> T:
    """`work(session, principal)` in a worker thread, committed, for an admin caller."""
    principal = info.context.principal
    principal.require(Scope.ADMIN)
    mark_uncacheable()
    engine = info.context.gateway.engine

    def run() -> T:
        with Session(write_engine(engine)) as session:
            result = work(session, principal)
            session.commit()
            return result

    return await info.context.gateway.run(run)
