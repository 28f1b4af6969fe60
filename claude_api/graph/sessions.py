"""The database work of the resolvers that are not analytics (budgets, alert rules): run in a
worker thread for a caller allowed to do it, reads in a read session, writes committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from claude_api.models.db import write_engine
from claude_api.models.keys import Scope
from claude_api.models.queries._cache import mark_unkept

T = TypeVar("T")


async def read(info: Info, work: Callable[[Session, str | None], T]) -> T:
    """`work(session, project)` in a worker thread for a caller allowed to read; `project` is
    the one its key is bound to (None: every project)."""
    principal = info.context.principal
    principal.require(Scope.READ)
    mark_unkept()  # these answers change without a data version change, or with the time
    context = info.context

    def run() -> T:
        with context.session() as session:
            return work(session, principal.project_id)

    return await run_in_threadpool(run)


async def write(info: Info, work: Callable[[Session, Any], T]) -> T:
    """`work(session, principal)` in a worker thread, committed, for an admin caller."""
    principal = info.context.principal
    principal.require(Scope.ADMIN)
    mark_unkept()
    engine = info.context.engine

    def run() -> T:
        with Session(write_engine(engine)) as session:
            result = work(session, principal)
            session.commit()
            return result

    return await run_in_threadpool(run)
