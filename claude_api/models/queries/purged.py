"""Invocations that purging removed from the raw rows but the rollups still count: what an
export or a task lookup over a purged period cannot list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from claude_api.models.filters import UsageFilter
from claude_api.models.queries._answer_cache import cached
from claude_api.models.queries._partial_sums import usage_parts
from claude_api.models.queries._range_split import Pieces, split_range
from claude_api.models.retention import purged_before


@dataclass(frozen=True)
class PurgedInvocations:
    """The raw rows of invocations that started before `before` were purged; the rollups count
    `invocations` of them in the range asked (finished ones: a running invocation is not
    rolled up)."""

    before: datetime
    invocations: int


@cached()
def count_purged_invocations(
    session: Session, *, filter: UsageFilter = UsageFilter()
) -> PurgedInvocations | None:
    """How many invocations matching `filter` the rollups count before the raw-row purge
    horizon (`retention_state.raw_purged_before`), whose raw rows are gone; None when no raw
    rows were purged, or the range starts at or after the horizon.

    The count is the rollups' sum over the whole UTC hours of the range before the horizon (a
    UTC midnight): exact for a range whose ends are whole hours, as days and months in whole-
    hour time zones are; an hour that a range end cuts is left out, since its raw rows are gone
    and a rollup does not split an hour. `filter.task_id` is ignored: the rollups hold no tasks,
    so a task lookup learns how many invocations of its project went.
    """
    raw_before, _ = purged_before(session)
    if raw_before is None or (filter.since is not None and filter.since >= raw_before):
        return None
    until = raw_before if filter.until is None else min(filter.until, raw_before)
    purged = filter.replace(task_id=None, until=until)
    # The rollup buckets only: the raw rows at the range's edges, and running rows, are
    # whatever the purge left, which the caller's listing already holds.
    pieces = Pieces(rollup=split_range(purged.since, purged.until).rollup)
    if not pieces.uses_rollups:
        return PurgedInvocations(before=raw_before, invocations=0)
    parts = usage_parts(purged, pieces, by=())
    finished = sa.func.coalesce(sa.func.sum(parts.c.invocations - parts.c.running), 0)
    return PurgedInvocations(
        before=raw_before, invocations=int(session.execute(sa.select(finished)).scalar_one())
    )
