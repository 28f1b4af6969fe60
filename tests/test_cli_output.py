"""The CLI's output module: numbers in human units, sparklines, tables at 80 columns, and text
from the data or in errors shown as is, never read as Rich markup."""

from __future__ import annotations

import pytest
from rich.console import Console

from claude_api.client import output
from claude_api.client.output import Column


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (None, "-"),
        (0, "$0.00"),
        (0.004, "$0.0040"),
        (0.01, "$0.01"),
        (1.234, "$1.23"),
        (1234.5, "$1,234.50"),
        (-2.5, "-$2.50"),
    ],
)
def test_money(amount: float | None, text: str) -> None:
    assert output.money(amount) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.25, "250ms"),
        (12.54, "12.5s"),
        (59.94, "59.9s"),
        (59.96, "1m 00s"),
        (65, "1m 05s"),
        (3599.4, "59m 59s"),
        (3600, "1h 00m"),
        (7380, "2h 03m"),
        (86400 * 3 + 3600 * 4, "3d 04h"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert output.duration(seconds) == text


def test_rates_counts_and_changes() -> None:
    assert output.percent(0.875) == "87.5%"
    assert output.percent(1.0) == "100.0%"
    assert output.percent(None) == "-"
    assert output.count(1234567) == "1,234,567"
    assert [output.tokens(n) for n in (950, 12_345, 123_456, 4_200_000)] == [
        "950", "12,345", "123.5k", "4.20M"
    ]  # fmt: skip
    assert output.signed(3) == "+3"
    assert output.signed(-1.2, output.money) == "-$1.20"
    assert output.signed(0) == "0"
    assert output.signed(0.125, output.percent) == "+12.5%"
    assert output.points(-0.025) == "-2.5 pts"
    assert output.moment("2026-05-01T10:00:00+00:00", "Europe/Paris") == "2026-05-01 12:00 CEST"


def test_sparkline_scales_to_the_peak_and_keeps_quiet_buckets_visible() -> None:
    assert output.sparkline([0, 1, 2, 4, 8]) == "▁▂▃▅█"
    assert output.sparkline([0, 1, 100]) == "▁▂█"
    assert output.sparkline([0, 0]) == "▁▁"
    assert output.sparkline([]) == ""


def render(renderable: object, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


def test_tables_show_data_as_is_and_fit_80_columns() -> None:
    rows = [
        {"name": "[bold]not markup[/bold]", "runs": 3, "cost": 1.5},
        {"name": "bell\x07 and escape\x1b[31m", "runs": 1234567, "cost": None},
        {"name": "a-very-long-agent-name-" * 6, "runs": 1, "cost": 0.1},
    ]
    columns = [
        Column("name", "Name"),
        Column("runs", "Runs", output.count, numeric=True),
        Column("cost", "Cost", output.money, numeric=True),
    ]
    printed = render(output.table(rows, columns, title="[red]Agents[/red]"))
    assert "[bold]not markup[/bold]" in printed
    assert "[red]Agents[/red]" in printed
    assert "\x07" not in printed and "\x1b" not in printed
    assert "1,234,567" in printed and "$1.50" in printed
    assert max(len(line) for line in printed.splitlines()) <= 80


def test_errors_escape_markup(capsys: pytest.CaptureFixture[str]) -> None:
    output.error("no agent named '[bold]x[/]' has been recorded")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: no agent named '[bold]x[/]' has been recorded" in captured.err


def test_progress_draws_nothing_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    with output.progress(10, description="exporting", enabled=False) as advance:
        advance(10)
    assert capsys.readouterr() == ("", "")
