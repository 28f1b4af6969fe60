"""The dashboard's first views made ready before anyone opens them.

The first load of a view computes everything a later load finds kept: its statements are
compiled for the period's shape, the parts of its answers over settled buckets are summed, its
answers computed (several times the cost of the loads that follow, at 10^6 events). So the
server loads, in the background, the views a dashboard opens first, exactly as a browser in
each time zone it is read in would load them (`claude_api.dashboard.pages`): the overview of
each period, the pages of the busiest agent and skill, the task list. What a browser then finds
is what its own first load would have left: compiled statements (shared by every name and
project), settled parts and answers.

It does so once the server has started, again after each local midnight (the periods move on),
and after a write that changed settled data (an import of older sessions, say) once such writes
have paused for a check's interval. A failure is logged and tried again at the next change.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import tzlocal
from strawberry import Schema

from claude_api.access import FULL_ACCESS, Principal
from claude_api.dashboard.pages import (
    DEFAULT_PERIOD,
    PERIODS,
    Request,
    overview,
    page_range,
    tasks,
    usage,
)
from claude_api.models import data_version
from claude_api.models.gateway import Gateway, computing_again

logger = logging.getLogger(__name__)

CHECK_SECONDS = 60.0  # how often the local dates and the settled data are looked at
# The default period first: it is what `/` shows.
ORDER = (DEFAULT_PERIOD, *(period for period in PERIODS if period != DEFAULT_PERIOD))


# Names of UTC that a machine may give (/etc/localtime is often Etc/UTC): browsers say "UTC".
_UTC_ALIASES = {"Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Universal", "Zulu"}


def local_zone_name() -> str:
    """This machine's time zone as an IANA name ("UTC" when it cannot be told)."""
    try:
        name = tzlocal.get_localzone_name() or "UTC"
        ZoneInfo(name)
    except Exception:  # an unknown TZ, a broken /etc/localtime
        return "UTC"
    return "UTC" if name in _UTC_ALIASES else name


def freeze_warmed_objects() -> None:
    """Move what the first warm-up kept (compiled statements, kept parts and answers: some
    180,000 objects at 10^6 events) out of the cyclic garbage collector's reach, as the server
    does with what its start made (`app.freeze_startup_objects`): they live as long as the
    server, and each full collection would otherwise walk them, a pause of every request in
    flight."""
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class _Context:
    """The GraphQL context of a warm-up request: full access, as a loopback browser without
    API keys has, through the gateway of the server's database (so its caches are the ones
    filled); it records nothing, so it has no tracker."""

    gateway: Gateway
    deadline: float | None
    principal: Principal = FULL_ACCESS
    tracker: None = None


class _State(NamedTuple):
    """What the warmed views depend on besides recent writes."""

    settled: int | None  # the settled token
    dates: tuple[date, ...]  # each zone's date


class _Stopped(Exception):
    """The server is stopping: the warm-up ends."""


@dataclass
class ViewWarmer:
    """Loads the dashboard's first views in `zones` (IANA names) through `schema`, reading
    through `gateway`."""

    gateway: Gateway
    schema: Schema
    zones: Sequence[str]
    check_seconds: float = CHECK_SECONDS
    rounds: int = 0  # warm-ups completed
    last_seconds: float | None = None  # how long the last one took

    def warm(
        self,
        zones: Sequence[str] | None = None,
        *,
        now: datetime | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Load each view in `zones` (default: all), in turn, in an event loop of this thread
        (call it from a worker thread: the requests' reads run on the gateway's threads
        meanwhile); `stop()` is asked before each request, and ends the warm-up early when
        true."""
        started = time.perf_counter()
        zones = self.zones if zones is None else zones
        moment = now or data_version.utc_now()
        loop = asyncio.new_event_loop()
        try:
            for zone in zones:
                self._warm_zone(loop, zone, moment, stop)
            # Again, as after a write: a history's first load reads its buckets in one
            # statement, a later one its recent buckets in another, compiled now.
            with computing_again():
                for zone in zones:
                    self._warm_zone(loop, zone, moment, stop)
        except _Stopped:
            return
        finally:
            loop.close()
        self.rounds += 1
        self.last_seconds = time.perf_counter() - started
        ready = ", ".join(zones)
        logger.info("the dashboard's first views are ready (%s): %.1f s", ready, self.last_seconds)

    def _warm_zone(
        self, loop: asyncio.AbstractEventLoop, tz: str, now: datetime, stop: Callable[[], bool]
    ) -> None:
        ranges = {period: page_range(period, now, ZoneInfo(tz)) for period in ORDER}
        busiest: dict[str, str] = {}

        def ask(request: Request) -> dict[str, Any]:
            if stop():
                raise _Stopped
            label, document, variables = request
            context = _Context(self.gateway, deadline=self.gateway.deadline())
            result = loop.run_until_complete(
                self.schema.execute(document, variable_values=variables, context_value=context)
            )
            if result.errors or result.data is None:
                message = result.errors[0].message if result.errors else "no data"
                raise RuntimeError(f"{label}: {message}")
            if label == "analytics":
                for kind, board in (("AGENT", "agents"), ("SKILL", "skills")):
                    rows = result.data[board]["items"]
                    if rows and kind not in busiest:
                        busiest[kind] = max(rows, key=lambda row: row["invocations"])["name"]
            return result.data

        for period in ORDER:
            overview(ranges[period], tz)(ask)
        for period in ORDER:
            for kind, name in busiest.items():
                usage(ranges[period], tz, kind, name)(ask)
        tasks(ranges[DEFAULT_PERIOD], tz)(ask)

    async def run(self, stopping: asyncio.Event) -> None:
        """Warm up now, then again when the settled data (every zone) or a zone's date (that
        zone) has changed and stayed so for a check's interval, until `stopping` is set."""
        warmed: _State | None = None
        last: _State | None = None
        while not stopping.is_set():
            seen = None
            try:
                seen = await self.gateway.run(self._state)
                if seen != warmed and (warmed is None or seen == last):
                    zones = self._zones_to_warm(warmed, seen)
                    warmed = seen  # a warm-up that fails is tried again at the next change
                    await asyncio.to_thread(self.warm, zones, stop=stopping.is_set)
                    if self.rounds == 1:
                        await asyncio.to_thread(freeze_warmed_objects)
            except Exception:
                logger.exception("preparing the dashboard's first views failed")
            last = seen
            with suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.check_seconds)

    def _zones_to_warm(self, warmed: _State | None, seen: _State) -> list[str]:
        """Every zone at first and after the settled data changed; else those whose date did."""
        if warmed is None or warmed.settled != seen.settled:
            return list(self.zones)
        dates = zip(self.zones, warmed.dates, seen.dates, strict=True)
        return [zone for zone, before, now in dates if before != now]

    def _state(self) -> _State:
        now = data_version.utc_now()
        dates = tuple(now.astimezone(ZoneInfo(zone)).date() for zone in self.zones)
        with self.gateway.session() as session:
            return _State(data_version.settled(session), dates)
