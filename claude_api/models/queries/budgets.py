"""Budgets and what they have spent: the list, each budget's state in its current period
(spent, remaining, forecast) and the decision for an invocation about to start.

The spend itself is one statement over the rollups (`claude_api.guardrails.spend`), the same
the PreToolUse hook runs on a bare connection; here it runs on the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.errors import InvalidFilter
from claude_api.guardrails.verdicts import (
    BUDGET_COLUMNS,
    Budget,
    BudgetState,
    Decision,
    budget_state,
    check_call,
)
from claude_api.models.filters import check_text


class SessionReader:
    """A `Reader` on a session: statements in the driver's own style, in its transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.dialect = session.get_bind().dialect.name

    def rows(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return self._session.connection().exec_driver_sql(sql, params).all()


def list_budgets(session: Session, *, project_id: str | None = None) -> list[Budget]:
    """Every budget, in id order; with `project_id`, only those of that project."""
    sql = f"SELECT {BUDGET_COLUMNS} FROM budgets"
    params: dict[str, Any] = {}
    if project_id is not None:
        sql += " WHERE project_key = :project"
        params["project"] = project_id
    rows = session.execute(sa.text(sql + " ORDER BY id"), params).all()
    return [Budget.of_row(tuple(row)) for row in rows]


def budget_statuses(
    session: Session, *, project_id: str | None = None, now: datetime | None = None
) -> list[BudgetState]:
    """Each budget (of `project_id` when given) in its current period at `now`: what its scope
    has spent so far, running invocations included, what is left and the forecast."""
    moment = now or datetime.now(UTC)
    reader = SessionReader(session)
    try:
        return [
            budget_state(reader, budget, moment)
            for budget in list_budgets(session, project_id=project_id)
        ]
    except (OverflowError, ValueError):  # a period next to the ends of the calendar
        raise InvalidFilter("at", "is out of the supported date range") from None


def check_budgets(
    session: Session,
    *,
    kind: str,
    name: str,
    project_id: str | None,
    now: datetime | None = None,
) -> tuple[Decision, list[BudgetState]]:
    """Whether an invocation of the `kind` named `name` in `project_id` may start now, and the
    budgets that cover it: its own, its project's and everything's."""
    check_text("name", name)
    check_text("project_id", project_id)
    reader = SessionReader(session)
    return check_call(
        reader, kind=kind, name=name, project_id=project_id, now=now or datetime.now(UTC)
    )
