"""`claude-api analytics history`: every agent and skill per period, with a totals row from the
query layer, by project and by model, over HTTP and in-process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from claude_api.events import Status, UsageEvent
from tests import expected
from tests.cli_support import SURFACES, Cli, assert_fits, cli, table_row
from tests.factories import BASE_TIME, add_events, make_event

__all__ = ["cli"]

DAY = timedelta(days=1)
RANGE = ("--since", "2026-04-28", "--until", "2026-05-05")


def spread() -> list[UsageEvent]:
    """Agents and skills over a week around 1 May 2026, two projects and two models."""
    return [
        make_event(
            timestamp=BASE_TIME + (i % 4) * DAY,
            name=f"agent-{i % 3}",
            kind="skill" if i % 5 == 0 else "agent",
            project_id="web" if i % 2 else "api",
            model="claude-opus-4-5" if i % 3 else "claude-sonnet-4-5",
            status=Status.FAILED if i % 7 == 0 else Status.COMPLETED,
            cost_usd=None if i % 6 == 0 else 0.125 * (i + 1),
            cache_read_tokens=1_000 * i,
            cache_creation_tokens=10 * i,
        )
        for i in range(30)
    ]


@pytest.mark.parametrize("surface", SURFACES)
def test_history_of_everything_per_day_with_totals(cli: Cli, surface: str) -> None:
    events = spread()
    add_events(cli.engine, *events)
    history = cli.json(surface, "analytics", "history", *RANGE)
    days = [bucket["periodStart"] for bucket in history["buckets"]]
    assert days == [f"2026-0{m}-{d:02d}" for m, d in [(4, 28), (4, 29), (4, 30)]] + [
        f"2026-05-0{d}" for d in range(1, 5)
    ]
    for bucket in history["buckets"]:
        mine = [e for e in events if e.timestamp.date().isoformat() == bucket["periodStart"]]
        assert bucket["invocations"] == len(mine)
    whole = expected.totals(events)
    totals = history["totals"]
    for field in ("invocations", "completed", "failed", "unpriced_invocations"):
        assert totals[_camel(field)] == whole[field], field
    assert totals["totalCostUsd"] == pytest.approx(whole["total_cost_usd"])
    assert totals["cacheReadTokens"] == sum(e.cache_read_tokens or 0 for e in events)

    printed = cli.ok(surface, "analytics", "history", *RANGE).stdout
    assert_fits(printed)
    total_row = table_row(printed, "Total")
    assert total_row[1] == f"{len(events):,}"
    assert f"${whole['total_cost_usd']:,.2f}" in total_row


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [("--project", "web", "project_id"), ("--model", "claude-opus-4-5", "model")],
)
def test_history_of_one_project_or_model(cli: Cli, option: str, value: str, field: str) -> None:
    events = spread()
    add_events(cli.engine, *events)
    chosen = [e for e in events if getattr(e, field) == value]
    for surface in SURFACES:
        history = cli.json(
            surface, "analytics", "history", "--period", "month", *RANGE, option, value
        )
        assert [b["periodStart"] for b in history["buckets"]] == ["2026-04-01", "2026-05-01"]
        assert history["totals"]["invocations"] == len(chosen)
        assert history["totals"]["totalCostUsd"] == pytest.approx(
            expected.totals(chosen)["total_cost_usd"]
        )


def test_history_on_a_narrow_terminal_keeps_period_and_cost(cli: Cli) -> None:
    add_events(cli.engine, *spread())
    printed = cli.run("in-process", "analytics", "history", *RANGE, COLUMNS="60").stdout
    assert_fits(printed, 60)
    assert "Cost" in printed and "Day" in printed
    # The columns that did not fit are named, not dropped in silence.
    note = " ".join(printed.split("Not shown at this width:", 1)[1].split())
    left_out = [name.strip() for name in note.split(".")[0].split(",")]
    header = next(line for line in printed.splitlines() if "Day" in line)
    assert left_out and all(name not in header for name in left_out)
    wide = cli.run("in-process", "analytics", "history", *RANGE, COLUMNS="250").stdout
    assert "Not shown" not in wide
    assert all(name in wide for name in left_out)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
