"""`claude-api analytics report` says what it covers and what it compares it with: the period
so far against the same stretch of the one before, and, right after an import whose invocations
are all older than today, the latest period with invocations rather than an empty today."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from claude_api.client.report_window import report_title
from tests.cli_support import SURFACES, Cli, cli
from tests.factories import add_events, make_event

__all__ = ["cli"]


@pytest.mark.parametrize("surface", SURFACES)
def test_an_empty_today_falls_back_to_the_latest_day_with_invocations(
    cli: Cli, surface: str
) -> None:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    latest = today - timedelta(days=3)
    add_events(
        cli.engine,
        make_event(timestamp=latest),
        make_event(timestamp=latest + timedelta(hours=1)),
        make_event(timestamp=today - timedelta(days=4)),
    )
    result = cli.ok(surface, "analytics", "report")
    assert f"nothing recorded yet in the day of {today.date().isoformat()}" in result.stderr
    assert f"Day {latest.date().isoformat()} (UTC), compared with" in result.stdout
    report = cli.json(surface, "analytics", "report")
    assert (report["periodStart"], report["emptyPeriodStart"]) == (
        latest.date().isoformat(),
        today.date().isoformat(),
    )
    assert (report["totals"]["invocations"], report["previousTotals"]["invocations"]) == (2, 1)


@pytest.mark.parametrize("surface", SURFACES)
def test_the_month_so_far_is_compared_with_the_same_days_before(cli: Cli, surface: str) -> None:
    # Each surface reads its own "now": the two answers differ by the time between them.
    report = cli.json(surface, "analytics", "report", "--period", "month")
    until = datetime.fromisoformat(report["untilAt"])
    assert report["soFar"] and report["emptyPeriodStart"] is None
    # The same day of the month before at the same time, or that month's end when shorter.
    first = date.fromisoformat(report["periodStart"])
    before = (first - timedelta(days=1)).replace(day=1)
    try:
        wanted = until.replace(year=before.year, month=before.month)
    except ValueError:
        wanted = datetime(first.year, first.month, 1, tzinfo=UTC)
    assert datetime.fromisoformat(report["previousEndAt"]) == wanted
    assert datetime.fromisoformat(report["previousStartAt"]) == datetime(
        before.year, before.month, 1, tzinfo=UTC
    )


def _report(**fields: object) -> dict[str, object]:
    return {"tz": "UTC", "emptyPeriodStart": None, **fields}


def test_titles_name_the_stretches_compared() -> None:
    so_far = _report(
        periodStart="2026-12-01",
        soFar=True,
        startAt="2026-12-01T00:00:00+00:00",
        untilAt="2026-12-07T10:00:00+00:00",
        previousStartAt="2026-11-01T00:00:00+00:00",
        previousEndAt="2026-11-07T10:00:00+00:00",
    )
    assert report_title(so_far, "month") == (
        "Month 2026-12 so far (1-7 Dec, to 10:00 UTC), compared with 1-7 Nov, to 10:00"
    )
    week = _report(
        periodStart="2026-11-30",
        soFar=False,
        startAt="2026-11-30T00:00:00+00:00",
        untilAt="2026-12-07T00:00:00+00:00",
        previousStartAt="2026-11-23T00:00:00+00:00",
        previousEndAt="2026-11-30T00:00:00+00:00",
    )
    assert report_title(week, "week") == "Week of 2026-11-30 (UTC), compared with 23-29 Nov"
    new_year = _report(
        periodStart="2027-01-04",
        soFar=False,
        startAt="2027-01-04T00:00:00+00:00",
        untilAt="2027-01-11T00:00:00+00:00",
        previousStartAt="2026-12-28T00:00:00+00:00",
        previousEndAt="2027-01-04T00:00:00+00:00",
    )
    assert report_title(new_year, "week").endswith("compared with 28 Dec 2026-3 Jan 2027")
