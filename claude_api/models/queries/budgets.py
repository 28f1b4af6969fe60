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
from claude_api.guardrails.spend import Scope
from claude_api.guardrails.verdicts import (
    BUDGET_COLUMNS,
    Budget,
    BudgetState,
    Decision,
    budget_state,
    check_call,
)
from claude_api.models.budgets import BudgetRow
from claude_api.models.filters import check_text

_BUDGETS = BudgetRow.__table__


class SessionReader:
    """A `Reader` on a session: statements in the driver's own style, in its transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.dialect = session.get_bind().dialect.name

    def rows(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return self._session.connection().exec_driver_sql(sql, params).all()


def list_budgets(
    session: Session, *, project_id: str | None = None, covering: Scope | None = None
) -> list[Budget]:
    """Every budget, in id order; with `project_id`, only those of that project; with
    `covering`, only those that cover some of its invocations (see `covers`)."""
    query = sa.select(*(_BUDGETS.c[name] for name in BUDGET_COLUMNS.split(", ")))
    if project_id is not None:
        query = query.where(_BUDGETS.c.project_key == project_id)
    if covering is not None:
        query = query.where(covers(_BUDGETS, covering))
    rows = session.execute(query.order_by(_BUDGETS.c.id)).all()
    return [Budget.of_row(tuple(row)) for row in rows]


def covers(table: sa.Table, scope: Scope) -> sa.ColumnElement[bool]:
    """The rows of `table` (budgets or alert_rules) whose scope shares invocations with
    `scope`: each of their kind, name and project is '' (any) or, where `scope` names one, the
    same. The agents of project web are covered by the budgets of web, of one agent in every
    project and of everything; not by a skill's, nor by project api's."""
    check_text("name", scope.name)
    check_text("project_id", scope.project_id)
    named = (("kind", scope.kind), ("name", scope.name), ("project_key", scope.project_id))
    return sa.and_(
        sa.true(),
        *(table.c[column].in_(("", str(value))) for column, value in named if value is not None),
    )


def budget_statuses(
    session: Session,
    *,
    project_id: str | None = None,
    covering: Scope | None = None,
    now: datetime | None = None,
) -> list[BudgetState]:
    """Each budget (of `project_id`, and covering `covering`, when given: see `list_budgets`)
    in its current period at `now`: what its scope has spent so far, running invocations
    included, what is left and the forecast. Spent ones first, then in id order."""
    moment = now or datetime.now(UTC)
    reader = SessionReader(session)
    try:
        states = [
            budget_state(reader, budget, moment)
            for budget in list_budgets(session, project_id=project_id, covering=covering)
        ]
    except (OverflowError, ValueError):  # a period next to the ends of the calendar
        raise InvalidFilter("at", "is out of the supported date range") from None
    return sorted(states, key=lambda state: not state.exhausted)


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
