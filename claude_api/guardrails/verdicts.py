"""Budgets as the PreToolUse hook and the service both read them: which budgets cover a call,
how much of each is spent in its current period, and whether the call may go on.

Standard library only (the hook starts in milliseconds); the service reads through the same
functions with a `Reader` over its SQLAlchemy session, so both give one answer.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from claude_api.guardrails.periods import SPOKEN, period_bounds
from claude_api.guardrails.spend import Scope, read_spend

TYPE_CHECKING = False  # importing typing would cost the hook's start-up time
if TYPE_CHECKING:
    from typing import Any

    from claude_api.guardrails.spend import Reader

USD = "usd"
TOKENS = "tokens"
WARN = "warn"
DENY = "deny"
ALLOW = "allow"
# The budgets table's columns, as `Budget.of_row` reads them ('' stands for "any").
BUDGET_COLUMNS = "id, kind, name, project_key, period, unit, limit_usd, limit_tokens, action, tz"


class Budget(namedtuple("Budget", "id kind name project_id period unit limit action tz")):
    """A limit on what a scope may spend per `period` (day, ISO week or month) of its time
    zone `tz`: `limit` USD (a float) or tokens (an int), as `unit` says. `kind` (agent or skill)
    and `name` name one; both None: every agent and skill; `project_id` None: every project.
    `action` deny stops new subagents and skills it covers once it is spent; warn lets them
    run and says so. `id` is its row's."""

    __slots__ = ()

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> Budget:
        """A row of `BUDGET_COLUMNS`."""
        id, kind, name, project_key, period, unit, limit_usd, limit_tokens, action, tz = row
        limit = float(limit_usd) if unit == USD else int(limit_tokens)
        return cls(
            id=int(id),
            kind=kind or None,
            name=name or None,
            project_id=project_key or None,
            period=period,
            unit=unit,
            limit=limit,
            action=action,
            tz=tz,
        )

    @property
    def scope(self) -> Scope:
        return Scope(kind=self.kind, name=self.name, project_id=self.project_id)

    @property
    def label(self) -> str:
        """What the budget is called in messages: 'code-reviewer per day', 'project web per
        week', 'lint-fix in web per month', 'everything per day'."""
        if self.name is not None:
            subject = self.name if self.project_id is None else f"{self.name} in {self.project_id}"
        elif self.project_id is not None:
            subject = f"project {self.project_id}"
        else:
            subject = "everything"
        return f"{subject} per {self.period}"

    def amount(self, value: float | int | None) -> str:
        """`value` in the budget's unit: $20.41, or 1,200,000 tokens."""
        return money(value) if self.unit == USD else f"{count(value)} tokens"


class BudgetState(namedtuple("BudgetState", "budget start_at end_at now spend")):
    """A `budget` in its current period [start_at, end_at) at `now` (aware datetimes), with
    what its scope spent (`spend`, a `Spend`)."""

    __slots__ = ()

    @property
    def spent(self) -> float | int | None:
        """Spent so far in the budget's unit; None when nothing that ran reports a cost."""
        return self.spend.cost_usd if self.budget.unit == USD else self.spend.tokens

    @property
    def remaining(self) -> float | int | None:
        """What is left before the limit (0 once it is spent)."""
        spent = self.spent
        return None if spent is None else max(self.budget.limit - spent, 0)

    @property
    def exhausted(self) -> bool:
        """Whether the spend has reached the limit."""
        spent = self.spent
        return spent is not None and spent >= self.budget.limit

    @property
    def forecast(self) -> float | int | None:
        """The spend at the period's end if it goes on at its pace so far (None at its very
        start, or without a known spend)."""
        spent = self.spent
        elapsed = (min(self.now, self.end_at) - self.start_at).total_seconds()
        if spent is None or elapsed <= 0:
            return None
        projected = spent * (self.end_at - self.start_at).total_seconds() / elapsed
        return projected if self.budget.unit == USD else round(projected)

    def sentence(self) -> str:
        """ "budget 'code-reviewer per day' of $20.00 is spent: $20.41 today", or what is left."""
        budget = self.budget
        limit = budget.amount(budget.limit)
        when = SPOKEN[budget.period]
        unpriced = self.spend.unpriced_invocations if budget.unit == USD else 0
        if self.spent is None:
            return (
                f"budget '{budget.label}' of {limit}: the cost {when} is unknown "
                f"({count(unpriced)} invocations without a known cost)"
            )
        spent = f"{budget.amount(self.spent)} {when}"
        if unpriced:
            spent += f", not counting {count(unpriced)} invocations without a known cost"
        if self.exhausted:
            return f"budget '{budget.label}' of {limit} is spent: {spent}"
        left = budget.amount(self.remaining)
        return f"budget '{budget.label}' of {limit} has {left} left: {spent}"


class Decision(namedtuple("Decision", "decision reasons", defaults=((),))):
    """What a call covered by budgets gets: `decision` deny when a deny budget is spent, warn
    when only warn budgets are, else allow; `reasons` (a tuple of texts) say which, in words
    Claude reads."""

    __slots__ = ()

    def hook_output(self) -> dict[str, Any] | None:
        """The PreToolUse hook's answer on stdout; None (print nothing) to allow."""
        if self.decision == DENY:
            specific = {"permissionDecision": DENY, "permissionDecisionReason": self.text}
        elif self.decision == WARN:
            # No permission decision: an "allow" would skip the user's own permission rules.
            specific = {"additionalContext": f"Warning: {self.text}"}
        else:
            return None
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", **specific}}

    @property
    def text(self) -> str:
        return "; ".join(self.reasons)


def decide(states: Sequence[BudgetState]) -> Decision:
    """The decision for a call that the budgets of `states` cover."""
    spent = [state for state in states if state.exhausted]
    denying = [state.sentence() for state in spent if state.budget.action == DENY]
    if denying:
        return Decision(DENY, tuple(denying))
    if spent:
        return Decision(WARN, tuple(state.sentence() for state in spent))
    return Decision(ALLOW)


def budget_state(reader: Reader, budget: Budget, now: datetime) -> BudgetState:
    """`budget` in the period holding `now`, with what its scope spent in it so far."""
    start, end = period_bounds(now, budget.period, ZoneInfo(budget.tz))
    return BudgetState(budget, start, end, now, read_spend(reader, budget.scope, start, end))


def covering_budgets(
    reader: Reader, *, kind: str, name: str, project_id: str | None
) -> list[Budget]:
    """The budgets that cover an invocation of the `kind` named `name` in `project_id`: its
    own, its project's and everything's, in id order."""
    mark = ":{}" if reader.dialect == "sqlite" else "%({})s"
    params: dict[str, Any] = {"kind": kind, "name": name, "project": project_id or ""}
    sql = (
        f"SELECT {BUDGET_COLUMNS} FROM budgets "
        f"WHERE (kind = '' OR (kind = {mark.format('kind')} AND name = {mark.format('name')})) "
        f"AND (project_key = '' OR project_key = {mark.format('project')}) ORDER BY id"
    )
    return [Budget.of_row(row) for row in reader.rows(sql, params)]


def check_call(
    reader: Reader, *, kind: str, name: str, project_id: str | None, now: datetime
) -> tuple[Decision, list[BudgetState]]:
    """Whether an invocation of the `kind` named `name` in `project_id` may start at `now`."""
    states = [
        budget_state(reader, budget, now)
        for budget in covering_budgets(reader, kind=kind, name=name, project_id=project_id)
    ]
    return decide(states), states


def money(value: float | int | None) -> str:
    """US dollars as the CLI writes them: $1,234.56; under a cent with four decimals."""
    if value is None:
        return "-"
    sign, amount = ("-" if value < 0 else ""), abs(value)
    return f"{sign}${amount:.4f}" if 0 < amount < 0.01 else f"{sign}${amount:,.2f}"


def count(value: float | int | None) -> str:
    """A whole number with thousands separators."""
    return "-" if value is None else f"{round(value):,}"
