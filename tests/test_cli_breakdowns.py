"""`claude-api models` and `claude-api projects`: one row per model or project with a totals
row, over HTTP and in-process, on a narrow terminal, and for a key bound to one project."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from claude_api.events import Status, UsageEvent
from tests import expected
from tests.auth_support import secured_server
from tests.cli_support import SURFACES, Cli, assert_fits, cli, table_row
from tests.factories import BASE_TIME, add_events, make_event

__all__ = ["cli"]

RANGE = ("--since", "2026-04-28", "--until", "2026-05-08")
LONG_MODEL = "claude-opus-4-5-20251101-with-a-very-long-deployment-suffix"


def spread() -> list[UsageEvent]:
    """Three models (one long-named, one unpriced) and none, two projects and none."""
    models = ["claude-sonnet-4-5", LONG_MODEL, "local-llm", None]
    projects = ["web", "api", None]
    return [
        make_event(
            timestamp=BASE_TIME + timedelta(hours=4 * i, minutes=7),
            name=f"agent-{i % 3}",
            kind="skill" if i % 5 == 0 else "agent",
            model=models[i % 4],
            project_id=projects[i % 3],
            status=Status.FAILED if i % 7 == 0 else Status.COMPLETED,
            cost_usd=None if i % 4 == 2 else 0.125 * (i + 1),
            cache_read_tokens=1_000 * i,
            cache_creation_tokens=10 * i,
        )
        for i in range(36)
    ]


def _groups(events: list[UsageEvent], field: str) -> dict[str | None, list[UsageEvent]]:
    groups: dict[str | None, list[UsageEvent]] = {}
    for event in events:
        groups.setdefault(getattr(event, field), []).append(event)
    return groups


def _ranked(groups: dict[str | None, list[UsageEvent]]) -> list[str | None]:
    def key(name: str | None) -> tuple:
        cost = expected.totals(groups[name])["total_cost_usd"]
        return (cost is None, -(cost or 0.0), -len(groups[name]), name is None, name or "")

    return sorted(groups, key=key)


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize(
    ("command", "field", "key"),
    [("models", "model", "model"), ("projects", "project_id", "projectId")],
)
def test_one_row_each_with_totals(
    cli: Cli, surface: str, command: str, field: str, key: str
) -> None:
    events = spread()
    add_events(cli.engine, *events, make_event(timestamp=datetime(2026, 5, 9, tzinfo=UTC)))
    groups = _groups(events, field)
    found = cli.json(surface, command, *RANGE)
    rows = found["models" if command == "models" else "projects"]
    assert [row[key] for row in rows] == _ranked(groups)
    for row in rows:
        wanted = expected.totals(groups[row[key]])
        assert row["invocations"] == wanted["invocations"]
        assert row["unpricedInvocations"] == wanted["unpriced_invocations"]
        assert row["cacheReadTokens"] == wanted["cache_read_tokens"]
        if wanted["total_cost_usd"] is None:
            assert row["totalCostUsd"] is None
        else:
            assert row["totalCostUsd"] == pytest.approx(wanted["total_cost_usd"])
    whole = expected.totals(events)
    assert found["totals"]["invocations"] == len(events)
    assert found["totals"]["totalCostUsd"] == pytest.approx(whole["total_cost_usd"])

    printed = cli.ok(surface, command, *RANGE).stdout
    assert_fits(printed)
    total = table_row(printed, "Total")
    assert total[1] == f"{len(events):,}"
    assert f"${whole['total_cost_usd']:,.2f}" in total
    # The unpriced model's cost is unknown, not zero; the rows without a key are "(none)".
    if command == "models":
        assert table_row(printed, "local-llm")[3] == "-"
    assert table_row(printed, "(none)")[1] == f"{len(groups[None]):,}"


def test_models_of_one_project_and_kind(cli: Cli) -> None:
    events = spread()
    add_events(cli.engine, *events)
    chosen = [e for e in events if e.project_id == "web" and e.kind.value == "agent"]
    found = cli.both_json("models", *RANGE, "--project", "web", "--kind", "agent")
    assert {row["model"] for row in found["models"]} == {e.model for e in chosen}
    assert found["totals"]["invocations"] == len(chosen)


def test_a_narrow_terminal_keeps_the_name(cli: Cli) -> None:
    add_events(cli.engine, *spread())
    result = cli.run("in-process", "models", *RANGE, COLUMNS="60")
    assert result.exit_code == 0, result.stdout
    assert_fits(result.stdout, 60)
    assert "Model" in result.stdout and "Runs" in result.stdout
    assert table_row(result.stdout, "Total")
    assert any(line.strip().startswith("claude-opus-4-5") for line in result.stdout.splitlines())


def test_an_empty_range_says_so(cli: Cli) -> None:
    result = cli.run("in-process", "projects", *RANGE)
    assert result.exit_code == 0
    assert "no invocations" in result.stderr and result.stdout == ""


def test_a_project_key_sees_its_project_only(engine: Engine) -> None:
    events = spread()
    add_events(engine, *events)
    web = [e for e in events if e.project_id == "web"]
    with secured_server(engine) as server:
        key = server.key("read", project="web")
        env = {"CLAUDE_API_URL": server.url, "CLAUDE_API_KEY": key}
        projects = Cli(engine, server.url).run("http", "projects", "--json", **env)
        models = Cli(engine, server.url).run("http", "models", "--json", **env)
    assert projects.exit_code == 0, projects.stdout
    found = json.loads(projects.stdout)
    assert [(row["projectId"], row["invocations"]) for row in found["projects"]] == [
        ("web", len(web))
    ]
    by_model = json.loads(models.stdout)
    assert by_model["totals"]["invocations"] == len(web)
    assert sum(row["invocations"] for row in by_model["models"]) == len(web)


def test_the_totals_row_is_set_apart_from_a_project_named_total(cli: Cli) -> None:
    add_events(
        cli.engine,
        make_event(project_id="Total", cost_usd=5.0),
        make_event(project_id="web", cost_usd=2.0),
    )
    for surface in SURFACES:
        # Wide enough for every column: nothing is named as left out below the table.
        printed = cli.run(surface, "projects", *RANGE, COLUMNS="250").stdout
        lines = [line.strip() for line in printed.splitlines()]
        named_total = [i for i, line in enumerate(lines) if line.split()[:1] == ["Total"]]
        # The project's own row among the rows, and the totals after a blank line, last.
        assert len(named_total) == 2, printed
        project, totals = named_total
        assert lines[project].split()[1:2] == ["1"] and "$5.00" in lines[project]
        assert lines[project + 1].startswith("web")
        assert lines[totals].split()[1:2] == ["2"] and "$7.00" in lines[totals]
        assert lines[totals - 1] == "" and totals == project + 3
        assert not any(lines[totals + 1 :]), printed


def test_tokens_nobody_reported_print_as_unknown_not_zero(cli: Cli) -> None:
    """Inline skills (no model, no tokens, no cost, as Claude Code records them) beside a skill
    that reports tokens: their token counts are unknown (`-`, null in JSON), the other's and the
    totals' are the sum of what was reported."""
    inline = [
        make_event(
            kind="skill",
            name="commit",
            timestamp=BASE_TIME + timedelta(hours=i),
            model=None,
            cost_usd=None,
            input_tokens=None,
            output_tokens=None,
            cache_read_tokens=None,
            cache_creation_tokens=None,
        )
        for i in range(3)
    ]
    measured = make_event(
        kind="skill",
        name="pdf",
        timestamp=BASE_TIME + timedelta(hours=5),
        input_tokens=120,
        output_tokens=30,
        cache_read_tokens=None,
        cache_creation_tokens=None,
    )
    add_events(cli.engine, *inline, measured)
    stats = {row["name"]: row for row in cli.both_json("skills", "stats", *RANGE)}
    assert stats["commit"]["inputTokens"] is None and stats["commit"]["totalTokens"] is None
    assert stats["pdf"]["inputTokens"] == 120 and stats["pdf"]["cacheReadTokens"] is None
    assert stats["pdf"]["totalTokens"] == 150
    models = {row["model"]: row for row in cli.both_json("models", *RANGE)["models"]}
    assert models[None]["totalTokens"] is None
    assert cli.both_json("models", *RANGE)["totals"]["totalTokens"] == 150
    printed = cli.run("in-process", "models", *RANGE, COLUMNS="100").stdout
    assert table_row(printed, "(none)")[-1] == "-"
    printed = cli.run("in-process", "skills", "stats", *RANGE, COLUMNS="120").stdout
    tokens = printed[printed.index("Tokens") :]
    assert table_row(tokens, "commit")[1:] == ["-"] * 5
