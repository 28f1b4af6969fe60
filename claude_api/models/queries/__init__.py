"""The query layer: every SELECT and aggregate over the usage tables, as pure functions from a
session and typed filters to typed results. Resolvers, REST handlers and the CLI call these.
"""

from __future__ import annotations

from claude_api.models.queries._answer_cache import computing_afresh
from claude_api.models.queries._range_split import reading_raw_rows
from claude_api.models.queries.breakdowns import usage_by_model, usage_by_project
from claude_api.models.queries.history import usage_by_period, usage_report
from claude_api.models.queries.invocations import (
    InvocationRecord,
    count_invocations,
    iter_invocation_rows,
    iter_invocations,
    list_invocations,
)
from claude_api.models.queries.stats import (
    errors_by_name,
    leaderboard,
    list_names,
    stats_by_name,
    usage_stats,
)
from claude_api.models.queries.tasks import list_task_usage, list_tasks

__all__ = [
    "InvocationRecord",
    "computing_afresh",
    "count_invocations",
    "errors_by_name",
    "iter_invocation_rows",
    "iter_invocations",
    "leaderboard",
    "list_invocations",
    "list_names",
    "list_task_usage",
    "list_tasks",
    "reading_raw_rows",
    "stats_by_name",
    "usage_by_model",
    "usage_by_period",
    "usage_by_project",
    "usage_report",
    "usage_stats",
]
