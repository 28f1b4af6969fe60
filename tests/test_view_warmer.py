"""The server's warm-up of the dashboard's first views: when it runs again (after an older write,
after a local midnight, not after recent writes), that it stops when the server does, and the
machine's time zone it prepares by default. That a browser's first load then finds the views
ready is tested in a real browser (tests/test_dashboard_browser.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from claude_api.graph.schema import build_schema
from claude_api.models import data_version
from claude_api.models.gateway import Gateway
from claude_api.server.warming import ViewWarmer
from tests.factories import add_events, make_event

ZONE = "America/New_York"
NEW_YORK = ZoneInfo(ZONE)


@pytest.fixture
def gateway(engine: Engine) -> Iterator[Gateway]:
    """The read gateway of the server's database, as its warm-up reads through it."""
    opened = Gateway(engine, threads=4)
    yield opened
    opened.close()


async def until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_the_warm_up_runs_again_after_an_older_write_and_after_midnight(
    engine: Engine, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An hour before midnight in New York, 13:00 in Tokyo: New York's date changes first.
    midnight = datetime.combine(datetime.now(UTC).astimezone(NEW_YORK).date(), time(), NEW_YORK)
    clock = {"now": midnight.astimezone(UTC) - timedelta(hours=1)}
    monkeypatch.setattr(data_version, "utc_now", lambda: clock["now"])
    add_events(engine, make_event(timestamp=clock["now"] - timedelta(hours=1)))
    zones = ["America/New_York", "Asia/Tokyo"]
    warmer = ViewWarmer(gateway, build_schema(), zones, check_seconds=0.02)
    warmed: list[list[str]] = []
    warm = warmer.warm

    def noting(zones: list[str], **options: object) -> None:
        warmed.append(list(zones))
        warm(zones, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(warmer, "warm", noting)

    async def scenario() -> None:
        stopping = asyncio.Event()
        running = asyncio.create_task(warmer.run(stopping))
        await until(lambda: warmer.rounds == 1)
        # A running session's writes leave the warmed views' settled parts as they were.
        recent = make_event(name="recent", timestamp=clock["now"] - timedelta(minutes=5))
        await asyncio.to_thread(add_events, engine, recent)
        await asyncio.sleep(0.3)  # fifteen checks
        assert warmer.rounds == 1
        # An import of a session three days old changes them: every zone is warmed again.
        older = make_event(name="imported", timestamp=clock["now"] - timedelta(days=3))
        await asyncio.to_thread(add_events, engine, older)
        await until(lambda: warmer.rounds == 2)
        # New York's periods move on at its midnight: its views are warmed again.
        clock["now"] = midnight.astimezone(UTC) + timedelta(seconds=1)
        await until(lambda: warmer.rounds == 3)
        stopping.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(scenario())
    assert warmed == [zones, zones, ["America/New_York"]]


def test_a_warm_up_stops_before_its_next_request(engine: Engine, gateway: Gateway) -> None:
    add_events(engine, make_event(timestamp=datetime.now(UTC) - timedelta(hours=1)))
    warmer = ViewWarmer(gateway, build_schema(), [ZONE])
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 3

    warmer.warm(stop=stop)
    assert len(asked) == 4  # three requests sent, the fourth not
    assert warmer.rounds == 0


@pytest.mark.parametrize(
    ("tz", "prepared"),
    [("Asia/Tokyo", "Asia/Tokyo"), ("Etc/UTC", "UTC"), ("Nowhere/Atlantis", "UTC")],
)
def test_the_zone_prepared_by_default_is_the_machines(tz: str, prepared: str) -> None:
    code = "from claude_api.server.warming import local_zone_name; print(local_zone_name())"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TZ": tz},
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == prepared
