"""Budgets: the table, and setting and removing them. One budget per scope (an agent or skill,
a project, or everything), period and unit; setting it again changes its limit, action and time
zone. What a budget has spent is read by `claude_api.models.queries.budgets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

from claude_api.errors import InvalidFilter, NotFound
from claude_api.events import MAX_COST_USD, MAX_NAME_LENGTH, MAX_TOKENS, Kind
from claude_api.guardrails.periods import PERIODS
from claude_api.guardrails.verdicts import BUDGET_COLUMNS, DENY, TOKENS, USD, WARN, Budget
from claude_api.models.tables import NAME
from claude_api.models.types import UTCDateTime

ACTIONS = (WARN, DENY)
UNITS = (USD, TOKENS)
MAX_TZ_LENGTH = 64
MAX_LIMIT_TOKENS = MAX_TOKENS * 1000  # a month of a busy team stays far below


class BudgetRow(SQLModel, table=True):
    """A budget. `kind`, `name` and `project_key` hold '' for "any" (a NULL would not match in
    the unique key); exactly one of `limit_usd` and `limit_tokens` is set, as `unit` says."""

    __tablename__ = "budgets"
    __table_args__ = (
        sa.UniqueConstraint("kind", "name", "project_key", "period", "unit", name="uq_budgets"),
        sa.CheckConstraint("kind IN ('', 'agent', 'skill')", name="ck_budgets_kind"),
        sa.CheckConstraint("period IN ('day', 'week', 'month')", name="ck_budgets_period"),
        sa.CheckConstraint("action IN ('warn', 'deny')", name="ck_budgets_action"),
        sa.CheckConstraint(
            "(unit = 'usd' AND limit_usd IS NOT NULL AND limit_tokens IS NULL) OR "
            "(unit = 'tokens' AND limit_tokens IS NOT NULL AND limit_usd IS NULL)",
            name="ck_budgets_limit",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=sa.String(16))
    name: str = Field(sa_type=NAME)
    project_key: str = Field(sa_type=NAME)
    period: str = Field(sa_type=sa.String(8))
    unit: str = Field(sa_type=sa.String(8))
    limit_usd: float | None = Field(default=None, sa_type=sa.Float)
    limit_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    action: str = Field(sa_type=sa.String(8))
    tz: str = Field(sa_type=sa.String(MAX_TZ_LENGTH))
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


@dataclass(frozen=True)
class BudgetChange:
    """A budget as set, and whether it is new (False: an existing one was changed)."""

    budget: Budget
    created: bool


def set_budget(
    session: Session,
    *,
    kind: Kind | str | None = None,
    name: str | None = None,
    project_id: str | None = None,
    period: str,
    usd: float | None = None,
    tokens: int | None = None,
    action: str = DENY,
    tz: str = "UTC",
    now: datetime | None = None,
) -> BudgetChange:
    """Set the budget of a scope, period and unit (USD or tokens: give exactly one); the caller
    commits. Raises InvalidFilter, naming the field, for bad input."""
    scope = _scope(kind, name, project_id)
    period = _one_of("period", period, PERIODS)
    action = _one_of("action", action, ACTIONS)
    tz = _zone(tz)
    unit, limit_usd, limit_tokens = _limit(usd, tokens)
    table = BudgetRow.__table__
    key = {**scope, "period": period, "unit": unit}
    values = {"limit_usd": limit_usd, "limit_tokens": limit_tokens, "action": action, "tz": tz}
    moment = now or datetime.now(UTC)
    where = [table.c[column] == value for column, value in key.items()]
    existed = session.execute(sa.select(table.c.id).where(*where)).scalar() is not None
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table).values(**key, **values, created_at=moment, updated_at=moment)
    # One statement: two callers setting the same budget at once both succeed, the last wins.
    session.execute(
        insert.on_conflict_do_update(
            index_elements=list(key), set_={**values, "updated_at": moment}
        )
    )
    found = session.execute(sa.select(table.c.id).where(*where)).scalar_one()
    return BudgetChange(_read(session, found), created=not existed)


def remove_budget(session: Session, budget_id: int, *, project_id: str | None = None) -> Budget:
    """Remove a budget; the caller commits. With `project_id`, only a budget of that project
    may be removed. Raises NotFound when there is no such budget (for that project)."""
    budget = find_budget(session, budget_id, project_id=project_id)
    table = BudgetRow.__table__
    session.execute(sa.delete(table).where(table.c.id == budget.id))
    return budget


def find_budget(session: Session, budget_id: int, *, project_id: str | None = None) -> Budget:
    """The budget `budget_id` (of `project_id` when given); NotFound otherwise."""
    table = BudgetRow.__table__
    query = sa.select(table.c.id).where(table.c.id == budget_id)
    if project_id is not None:
        query = query.where(table.c.project_key == project_id)
    if not isinstance(budget_id, int) or session.execute(query).scalar() is None:
        raise NotFound(f"no budget {budget_id}")
    return _read(session, budget_id)


def _read(session: Session, budget_id: int) -> Budget:
    row = session.execute(
        sa.text(f"SELECT {BUDGET_COLUMNS} FROM budgets WHERE id = :id"), {"id": budget_id}
    ).one()
    return Budget.of_row(tuple(row))


def _scope(kind: Kind | str | None, name: str | None, project_id: str | None) -> dict[str, str]:
    if (kind is None) != (name is None):
        raise InvalidFilter("name", "an agent or skill budget needs both its kind and its name")
    if kind is not None:
        kind = _one_of("kind", str(getattr(kind, "value", kind)), tuple(k.value for k in Kind))
    return {
        "kind": kind or "",
        "name": _text("name", name) or "",
        "project_key": _text("project_id", project_id) or "",
    }


def _text(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidFilter(field, f"must be a text of 1 to {MAX_NAME_LENGTH} characters")
    if "\x00" in value:
        raise InvalidFilter(field, "must not contain NUL characters")
    return value


def _one_of(field: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidFilter(field, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _zone(tz: str) -> str:
    try:
        if not isinstance(tz, str) or len(tz) > MAX_TZ_LENGTH:
            raise ValueError
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InvalidFilter("tz", f"unknown IANA time zone {tz!r}, e.g. Europe/Paris") from None
    return tz


def _limit(usd: float | None, tokens: int | None) -> tuple[str, float | None, int | None]:
    if (usd is None) == (tokens is None):
        raise InvalidFilter("usd", "give the limit either in USD or in tokens")
    if usd is not None:
        if (
            isinstance(usd, bool)
            or not isinstance(usd, int | float)
            or not math.isfinite(usd)
            or not 0 < usd <= MAX_COST_USD
        ):
            raise InvalidFilter("usd", f"must be a number above 0, at most {MAX_COST_USD:,.0f}")
        return USD, float(usd), None
    whole = isinstance(tokens, int) and not isinstance(tokens, bool)
    if not whole or not 0 < tokens <= MAX_LIMIT_TOKENS:
        raise InvalidFilter("tokens", f"must be a whole number from 1 to {MAX_LIMIT_TOKENS:,}")
    return TOKENS, None, tokens
