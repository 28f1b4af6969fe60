"""Statements built once per shape of a question, its values passed as bind parameters.

Building a statement and computing its cache key cost more than running it over the rollups,
and both depend only on the question's shape: which filters are set, the kind and status, and
how many pieces of each grain its range splits into. A question becomes a `Bound` filter and
pieces whose values are named bind parameters, and a dict of their values; a statement built
from them is kept (`statements`) and serves every question of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

import sqlalchemy as sa

from claude_api.events import Kind, Status
from claude_api.models.filters import UsageFilter
from claude_api.models.queries._range_split import Interval, Pieces
from claude_api.models.types import UTCDateTime

TEXT_FIELDS = ("name", "task_id", "project_id", "model")
KEPT_STATEMENTS = 512
F = TypeVar("F", bound=Callable[..., Any])
# Whether each end of each interval is bounded, per grain ("less_" and a grain for buckets to
# subtract, "raw" for the raw rows).
Layout = tuple[tuple[str, tuple[tuple[bool, bool], ...]], ...]


@dataclass(frozen=True)
class Bound:
    """A filter whose text values and range ends are bind parameters (or None when unset);
    kind and status stay values, since they choose tables and branches."""

    kind: Kind | None = None
    status: Status | None = None
    name: Any = None
    task_id: Any = None
    project_id: Any = None
    model: Any = None
    since: Any = None
    until: Any = None


Filter = UsageFilter | Bound


@dataclass(frozen=True)
class Shape:
    """What a statement's text depends on: the kind, the status, the filters given and the
    layout of the pieces."""

    kind: Kind | None
    status: Status | None
    given: frozenset[str]
    layout: Layout
    prefix: str = ""  # of the parameters' names, for two questions in one statement

    def bound(self) -> tuple[Bound, Pieces]:
        """The filter and pieces of this shape, as bind parameters named after `values`."""
        texts = {
            field: self._param(field, sa.String()) for field in TEXT_FIELDS if field in self.given
        }
        ends = {field: self._param(field, UTCDateTime()) for field in ("since", "until")}
        filter = Bound(
            kind=self.kind,
            status=self.status,
            **texts,
            **{field: param for field, param in ends.items() if field in self.given},
        )
        intervals = {
            grain: [
                (
                    self._param(f"{grain}_{number}_start", UTCDateTime()) if starts else None,
                    self._param(f"{grain}_{number}_end", UTCDateTime()) if ends_ else None,
                )
                for number, (starts, ends_) in enumerate(bounds)
            ]
            for grain, bounds in self.layout
        }
        raw = intervals.pop("raw", [])
        less = {
            grain.removeprefix("less_"): intervals.pop(grain)
            for grain in list(intervals)
            if grain.startswith("less_")
        }
        return filter, Pieces(rollup=intervals, raw=raw, less=less)

    def _param(self, key: str, type_: Any) -> Any:
        return sa.bindparam(self.prefix + key, type_=type_)


def bind(filter: UsageFilter, pieces: Pieces, *, prefix: str = "") -> tuple[Shape, dict[str, Any]]:
    """The shape of (`filter`, `pieces`) and the values of its bind parameters, whose names
    start with `prefix`."""
    values: dict[str, Any] = {
        field: getattr(filter, field)
        for field in (*TEXT_FIELDS, "since", "until")
        if getattr(filter, field) is not None
    }
    grains = [
        *pieces.rollup.items(),
        *((f"less_{grain}", intervals) for grain, intervals in pieces.less.items()),
        ("raw", pieces.raw),
    ]
    layout: list[tuple[str, tuple[tuple[bool, bool], ...]]] = []
    for grain, intervals in grains:
        if not intervals:
            continue
        layout.append((grain, tuple(_ends(interval) for interval in intervals)))
        for number, (start, end) in enumerate(intervals):
            _put(values, f"{grain}_{number}_start", start)
            _put(values, f"{grain}_{number}_end", end)
    shape = Shape(
        kind=filter.kind,
        status=filter.status,
        given=frozenset(values.keys() & {*TEXT_FIELDS, "since", "until"}),
        layout=tuple(layout),
        prefix=prefix,
    )
    return shape, {prefix + key: value for key, value in values.items()}


def statements(function: F) -> F:
    """Keep the statements `function` builds from hashable shape arguments."""
    return lru_cache(maxsize=KEPT_STATEMENTS)(function)  # type: ignore[return-value]


def _ends(interval: Interval) -> tuple[bool, bool]:
    return interval[0] is not None, interval[1] is not None


def _put(values: dict[str, Any], key: str, moment: datetime | None) -> None:
    if moment is not None:
        values[key] = moment
