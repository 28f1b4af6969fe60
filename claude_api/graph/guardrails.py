"""GraphQL for budgets (and alerts): their types, and the query and mutation fields that the
schema's `Query` and `Mutation` inherit. Reading needs a read key, changing an admin key; a key
bound to a project sees and changes that project's only."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import strawberry
from sqlmodel import Session
from strawberry.types import Info

from claude_api.events import Kind as KindEnum
from claude_api.graph.alerts import AlertMutations, AlertQueries, covered_scope
from claude_api.graph.scalars import Long
from claude_api.graph.sessions import read, write
from claude_api.graph.types import Kind, Period
from claude_api.guardrails import verdicts
from claude_api.models.budgets import remove_budget, set_budget
from claude_api.models.filters import Period as PeriodEnum
from claude_api.models.queries.budgets import budget_statuses, check_budgets, list_budgets

T = TypeVar("T")


class BudgetActionEnum(StrEnum):
    WARN = verdicts.WARN
    DENY = verdicts.DENY


class BudgetUnitEnum(StrEnum):
    USD = verdicts.USD
    TOKENS = verdicts.TOKENS


class DecisionEnum(StrEnum):
    ALLOW = verdicts.ALLOW
    WARN = verdicts.WARN
    DENY = verdicts.DENY


BudgetAction = strawberry.enum(
    BudgetActionEnum,
    name="BudgetAction",
    description="What a spent budget does to a new subagent, skill or task: DENY stops it, "
    "WARN lets it run and says so.",
)
BudgetUnit = strawberry.enum(
    BudgetUnitEnum, name="BudgetUnit", description="What a budget limits: USD or tokens."
)
BudgetDecision = strawberry.enum(
    DecisionEnum,
    name="BudgetDecision",
    description="What an invocation about to start gets from its budgets.",
)


@strawberry.type(
    description="A limit on what an agent, a skill, a project or everything may spend per "
    "day, ISO week or month of its time zone."
)
class Budget:
    id: int
    kind: Kind | None = strawberry.field(description="Null for a project's or everything's.")
    name: str | None
    project_id: str | None = strawberry.field(description="Null: every project.")
    period: Period
    unit: BudgetUnit
    limit_usd: float | None
    limit_tokens: Long | None
    action: BudgetAction
    tz: str = strawberry.field(description="IANA time zone of its days, weeks and months.")
    label: str = strawberry.field(description="How messages name it: 'code-reviewer per day'.")

    @classmethod
    def of(cls, budget: verdicts.Budget) -> Budget:
        usd = budget.unit == verdicts.USD
        return cls(
            id=budget.id,
            kind=KindEnum(budget.kind) if budget.kind is not None else None,  # type: ignore[arg-type]
            name=budget.name,
            project_id=budget.project_id,
            period=PeriodEnum(budget.period),
            unit=BudgetUnitEnum(budget.unit),
            limit_usd=float(budget.limit) if usd else None,
            limit_tokens=None if usd else Long(int(budget.limit)),
            action=BudgetActionEnum(budget.action),
            tz=budget.tz,
            label=budget.label,
        )


@strawberry.type(description="A budget in its current period: what was spent, what is left.")
class BudgetStatus:
    budget: Budget
    start_at: datetime = strawberry.field(description="Its current period's first instant.")
    end_at: datetime = strawberry.field(description="The instant its next period begins.")
    invocations: Long = strawberry.field(description="Invocations started in the period.")
    unpriced_invocations: Long = strawberry.field(
        description="Of those, how many report no cost (left out of costUsd)."
    )
    cost_usd: float | None = strawberry.field(
        description="What they cost; null when none of them reports a cost."
    )
    tokens: Long = strawberry.field(description="Input, output and cache tokens they used.")
    spent: float | None = strawberry.field(description="Spent so far, in the budget's unit.")
    remaining: float | None = strawberry.field(description="Left before the limit (0 if spent).")
    forecast: float | None = strawberry.field(
        description="The spend at the period's end at the pace so far; null at its start."
    )
    exhausted: bool = strawberry.field(description="Whether the spend has reached the limit.")
    message: str

    @classmethod
    def of(cls, state: verdicts.BudgetState) -> BudgetStatus:
        return cls(
            budget=Budget.of(state.budget),
            start_at=state.start_at,
            end_at=state.end_at,
            invocations=Long(state.spend.invocations),
            unpriced_invocations=Long(state.spend.unpriced_invocations),
            cost_usd=state.spend.cost_usd,
            tokens=Long(state.spend.tokens),
            spent=_number(state.spent),
            remaining=_number(state.remaining),
            forecast=_number(state.forecast),
            exhausted=state.exhausted,
            message=state.sentence(),
        )


@strawberry.type(description="Whether an invocation may start, and the budgets that cover it.")
class BudgetCheck:
    decision: BudgetDecision
    reasons: list[str] = strawberry.field(description="The spent budgets, in words Claude reads.")
    budgets: list[BudgetStatus]


@strawberry.input(
    description="A budget to set; setting one of the same scope, period and unit again changes "
    "its limit, action and time zone."
)
class BudgetInput:
    period: Period
    kind: Kind | None = strawberry.field(default=None, description="With name: one agent or skill.")
    name: str | None = None
    project_id: str | None = strawberry.field(
        default=None,
        description="Only this project's invocations (a project-bound key: its own, always).",
    )
    usd: float | None = strawberry.field(default=None, description="The limit in USD, or:")
    tokens: Long | None = strawberry.field(default=None, description="the limit in tokens.")
    action: BudgetAction = BudgetActionEnum.DENY
    tz: str = "UTC"


@strawberry.type
class GuardrailQueries(AlertQueries):
    """Budget and alert fields of `Query`."""

    @strawberry.field(description="Every budget, in id order (a project-bound key: its own).")
    async def budgets(self, info: Info) -> list[Budget]:
        found = await read(info, lambda session, project: list_budgets(session, project_id=project))
        return [Budget.of(budget) for budget in found]

    @strawberry.field(
        description="Every budget in its current period: spent so far (running invocations "
        "included), remaining and the forecast of the period's end at its pace so far; spent "
        "ones first, then in id order. With kind, name or projectId: only the budgets that "
        "cover some of those invocations (a project's, one agent's in every project and "
        "everything's cover that project's agents; a key bound to a project sees its own only)."
    )
    async def budget_status(
        self,
        info: Info,
        at: datetime | None = None,
        kind: Kind | None = None,
        name: str | None = None,
        project_id: str | None = None,
    ) -> list[BudgetStatus]:
        covering = covered_scope(info, kind, name, project_id)

        def work(session: Session, project: str | None) -> list[verdicts.BudgetState]:
            return budget_statuses(session, project_id=project, covering=covering, now=_aware(at))

        return [BudgetStatus.of(state) for state in await read(info, work)]

    @strawberry.field(
        description="Whether an invocation of an agent or skill in a project may start now: "
        "the decision of the budgets that cover it (its own, its project's, everything's)."
    )
    async def budget_check(
        self, info: Info, kind: Kind, name: str, project_id: str | None = None
    ) -> BudgetCheck:
        principal = info.context.principal
        project = principal.project(project_id)

        def work(session: Session, _: str | None) -> Any:
            return check_budgets(session, kind=kind.value, name=name, project_id=project)

        decision, states = await read(info, work)
        return BudgetCheck(
            decision=DecisionEnum(decision.decision),
            reasons=list(decision.reasons),
            budgets=[BudgetStatus.of(state) for state in states],
        )


@strawberry.type
class GuardrailMutations(AlertMutations):
    """Budget and alert fields of `Mutation`."""

    @strawberry.mutation(description="Set a budget (admin); setting it again changes it.")
    async def set_budget(self, info: Info, budget: BudgetInput) -> Budget:
        def work(session: Session, principal: Any) -> verdicts.Budget:
            return set_budget(
                session,
                kind=budget.kind.value if budget.kind is not None else None,
                name=budget.name,
                project_id=principal.project(budget.project_id, field="projectId"),
                period=budget.period.value,
                usd=budget.usd,
                tokens=budget.tokens,
                action=budget.action.value,
                tz=budget.tz,
            ).budget

        return Budget.of(await write(info, work))

    @strawberry.mutation(description="Remove a budget (admin); answers the budget removed.")
    async def remove_budget(self, info: Info, id: int) -> Budget:
        def work(session: Session, principal: Any) -> verdicts.Budget:
            return remove_budget(session, id, project_id=principal.project_id)

        return Budget.of(await write(info, work))


def _number(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _aware(at: datetime | None) -> datetime | None:
    from claude_api.errors import InvalidFilter

    if at is not None and at.utcoffset() is None:
        raise InvalidFilter("at", "must carry a time zone offset")
    return at
