"""The GraphQL requests each dashboard page sends for its data, with the variables its scripts
give them (`state.js` for the periods, the views for the rest): the server's warm-up sends them
before anyone opens the pages, and the benchmark times them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from claude_api.dashboard.documents import documents

PERIODS = ("24h", "7d", "30d", "90d")  # the picker's periods, besides a custom range
DEFAULT_PERIOD = "7d"
SHOWN = 10  # leaderboard rows the overview shows before "show all"

Request = tuple[str, str, dict[str, Any]]  # (label, document, variables)
Ask = Callable[[Request], dict[str, Any]]  # sends a request, returns its data
Requests = Callable[[Ask], None]  # a page's requests, the later ones made from earlier answers


@dataclass(frozen=True)
class Range:
    """A period as `state.js` makes it: [since, until), the one before, the charts' bucket."""

    since: datetime
    until: datetime
    previous_since: datetime
    previous_until: datetime
    bucket: str


def page_range(period: str, now: datetime, zone: ZoneInfo) -> Range:
    """The range of "24h", "7d", "30d" or "90d" at `now` in the browser's zone `zone`: the
    last 24 hours end at the end of the current hour, the last N days at the coming midnight."""
    if period == "24h":
        local = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        until = (local + timedelta(hours=1)).astimezone(UTC)
        since = until - timedelta(days=1)
        return Range(since, until, since - timedelta(days=1), since, "HOUR")
    days = int(period.removesuffix("d"))
    today = now.astimezone(zone).date()

    def midnight(day: date) -> datetime:
        return datetime.combine(day, clock(), zone).astimezone(UTC)

    first = today - timedelta(days=days - 1)
    return Range(
        midnight(first),
        midnight(today + timedelta(days=1)),
        midnight(first - timedelta(days=days)),
        midnight(first),
        "DAY",
    )


def usage_filter(since: datetime, until: datetime, tz: str, **extra: Any) -> dict[str, Any]:
    """The UsageFilterInput of [since, until) in the browser's zone `tz`."""
    return {"since": since.isoformat(), "until": until.isoformat(), "tz": tz, **extra}


def overview(period: Range, tz: str) -> Requests:
    """The overview: its analytics, its budgets and alerts, then the trend lines of the top
    agents and of its leaderboards' shown rows."""
    docs = documents()
    current = usage_filter(period.since, period.until, tz)
    previous = usage_filter(period.previous_since, period.previous_until, tz)

    def requests(ask: Ask) -> None:
        variables = {"filter": current, "previous": previous, "period": period.bucket}
        data = ask(("analytics", docs["OVERVIEW"], variables))
        ask(("budgets and alerts", docs["GUARDRAILS"], {"projectId": None}))
        pairs = [("AGENT", entry["name"]) for entry in data["topAgents"]]
        for board in ("agents", "skills"):
            rows = sorted(data[board]["items"], key=lambda row: -row["invocations"])[:SHOWN]
            pairs += [(row["kind"], row["name"]) for row in rows]
        agents = list(dict.fromkeys(name for kind, name in pairs if kind == "AGENT"))
        skills = list(dict.fromkeys(name for kind, name in pairs if kind == "SKILL"))
        trends = {"filter": current, "period": period.bucket, "agents": agents, "skills": skills}
        trends |= {"withAgents": bool(agents), "withSkills": bool(skills)}
        ask(("trend lines", docs["TRENDS"], trends))

    return requests


def usage(period: Range, tz: str, kind: str, name: str) -> Requests:
    """An agent's or a skill's page (`kind` AGENT or SKILL): its analytics, then the budgets
    and alerts covering it."""
    variables = {
        "kind": kind,
        "name": name,
        "isAgent": kind == "AGENT",
        "filter": usage_filter(period.since, period.until, tz),
        "previous": usage_filter(period.previous_since, period.previous_until, tz),
        "period": period.bucket,
    }
    covering = {"projectId": None, "kind": kind, "name": name}

    def requests(ask: Ask) -> None:
        ask(("usage", documents()["USAGE"], variables))
        ask(("budgets and alerts", documents()["GUARDRAILS"], covering))

    return requests


def tasks(period: Range, tz: str, **narrowed: Any) -> Requests:
    """The task list, narrowed by `kind` and `name`, or `status`; with `next_page`, its
    second page too."""
    status = narrowed.pop("status", None)
    extra = {"status": status} if status else {}
    variables = {
        "kind": narrowed.get("kind"),
        "name": narrowed.get("name"),
        "filter": usage_filter(period.since, period.until, tz, **extra),
        "after": None,
    }
    next_page = narrowed.get("next_page", False)

    def requests(ask: Ask) -> None:
        data = ask(("tasks", documents()["TASKS"], variables))
        if next_page:
            after = data["tasks"]["nextCursor"]
            ask(("next page", documents()["TASKS"], {**variables, "after": after}))

    return requests


def task(task_id: str) -> Requests:
    """A task's page."""

    def requests(ask: Ask) -> None:
        ask(("task", documents()["TASK"], {"id": task_id}))

    return requests
