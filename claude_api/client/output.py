"""The only place that prints: data to stdout, diagnostics to stderr. Tables from rows and
columns, numbers in human units (money, durations, rates), sparklines, JSON and progress bars.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

stdout = Console()
stderr = Console(stderr=True)

MISSING = "-"
# What data must not print raw: C0 controls (an escape sequence drives the terminal, a newline
# forges a table row), DEL and C1 controls, the bidirectional marks, embeddings, overrides and
# isolates (U+202E prints what follows backwards), the line and paragraph separators.
_ESCAPED_CODES = (
    *range(0x20),
    *range(0x7F, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x2028, 0x202F),
    *range(0x2066, 0x206A),
)
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _ESCAPED_CODES}
_ESCAPES.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})
SPARK_BARS = "▁▂▃▄▅▆▇█"


# ---- numbers and times in human units ---------------------------------------------------------


def plain(value: Any) -> str:
    """Any value as text; None as a dash."""
    return MISSING if value is None else str(value)


def count(value: int | None) -> str:
    """An integer with thousands separators: 12,345."""
    return MISSING if value is None else f"{value:,}"


def tokens(value: int | float | None) -> str:
    """A token count, short enough for a table column: 950, 12,345, 123.5k, 4.20M, 4.50B."""
    if value is None:
        return MISSING
    if value < 100_000:
        return f"{round(value):,}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    if value < 1_000_000_000:
        return f"{value / 1_000_000:.2f}M"
    return f"{value / 1_000_000_000:.2f}B"


def money(value: float | None) -> str:
    """US dollars: $1,234.56; amounts under a cent keep four decimals ($0.0042)."""
    if value is None:
        return MISSING
    sign = "-" if value < 0 else ""
    amount = abs(value)
    if 0 < amount < 0.01:
        return f"{sign}${amount:.4f}"
    return f"{sign}${amount:,.2f}"


def duration(seconds: float | None) -> str:
    """A duration in human units: 850ms, 12.5s, 1m 05s, 2h 03m, 3d 04h."""
    if seconds is None:
        return MISSING
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def percent(ratio: float | None) -> str:
    """A ratio as a percentage: 0.875 -> 87.5%."""
    return MISSING if ratio is None else f"{ratio * 100:.1f}%"


def signed(value: float | None, unit: Callable[[Any], str] = count) -> str:
    """A change with its sign: +3, -$1.20, +12.5%; 0 without one."""
    if value is None:
        return MISSING
    if value == 0:
        return unit(0)
    text = unit(abs(value))
    return f"+{text}" if value > 0 else f"-{text}"


def points(delta: float | None) -> str:
    """A change of a rate in percentage points: +2.5 pts."""
    return MISSING if delta is None else f"{delta * 100:+.1f} pts"


def moment(value: str | None, tz: str = "UTC") -> str:
    """An ISO 8601 instant from the API, in the time zone `tz`: 2026-05-01 12:00 CEST."""
    if value is None:
        return MISSING
    local = datetime.fromisoformat(value).astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M %Z")


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, scaled to the largest: ▁ for none, █ for the most."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK_BARS[0] * len(values)
    steps = len(SPARK_BARS) - 1
    # Any value above zero gets at least the second bar, so a quiet bucket differs from none.
    return "".join(
        SPARK_BARS[0] if value <= 0 else SPARK_BARS[max(1, math.ceil(value / top * steps))]
        for value in values
    )


def safe_text(value: str) -> Text:
    """Text from the data (a name, an error message) shown as is: never read as markup, and with
    control and bidirectional characters shown as visible escapes (`\\n`, `\\x1b`, `\\u202e`), so
    a value can neither drive the terminal nor pass for other rows or reordered text."""
    return Text(value.translate(_ESCAPES))


# ---- tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A table column: `key` of each row, its header, how a value reads, whether it is a number
    (right-aligned, never wrapped), whether it is an identifier (never wrapped)."""

    key: str
    header: str
    format: Callable[[Any], str] = plain
    numeric: bool = False
    no_wrap: bool = False


# Invocations without a cost, which a cost sum leaves out: shown only when some row has them.
UNPRICED_COLUMN = Column("unpricedInvocations", "Unpriced", count, numeric=True)


def priced_columns(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> list[Column]:
    """`columns` without UNPRICED_COLUMN when every row's cost covers all its invocations."""
    if any(row.get(UNPRICED_COLUMN.key) for row in rows):
        return list(columns)
    return [column for column in columns if column != UNPRICED_COLUMN]


def unpriced_field(totals: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A label/value pair saying how many invocations a total cost leaves out (none if none)."""
    unpriced = totals.get(UNPRICED_COLUMN.key)
    if not unpriced:
        return []
    return [("unpriced", f"{count(unpriced)} of {count(totals['invocations'])} without a cost")]


def table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> Table:
    """A Rich table of `rows` (mappings such as GraphQL results) in `columns`."""
    result = Table(
        title=safe_text(title) if title else None,
        caption=safe_text(caption) if caption else None,
        box=box.SIMPLE_HEAD,
        header_style="bold",
        title_style="bold",
        title_justify="left",
        caption_justify="left",
    )
    for column in columns:
        if column.numeric:
            result.add_column(column.header, justify="right", no_wrap=True)
        else:
            result.add_column(column.header, overflow="fold", no_wrap=column.no_wrap)
    for row in rows:
        result.add_row(*(safe_text(column.format(row.get(column.key))) for column in columns))
    return result


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> None:
    """Print a table of `rows` on stdout."""
    stdout.print(table(rows, columns, title=title, caption=caption))


def print_fields(fields: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
    """Print label/value pairs as a two-column table on stdout."""
    result = Table(
        title=safe_text(title) if title else None,
        show_header=False,
        box=None,
        padding=(0, 2, 0, 0),
        title_style="bold",
        title_justify="left",
    )
    result.add_column(style="bold", no_wrap=True)
    result.add_column(overflow="fold")
    for label, value in fields:
        result.add_row(safe_text(label), safe_text(value))
    stdout.print(result)


def print_line(text: str = "") -> None:
    """Print a line of data on stdout, as is."""
    stdout.print(safe_text(text), highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    stdout.out(json.dumps(data, indent=2, default=str), highlight=False)


# ---- diagnostics ------------------------------------------------------------------------------


def error(message: str) -> None:
    """A one-sentence error on stderr."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def info(message: str) -> None:
    """A diagnostic on stderr."""
    stderr.print(escape(message), highlight=False, soft_wrap=True)


def interactive() -> bool:
    """Whether a person is watching: stdout and stderr are both terminals."""
    return stdout.is_terminal and stderr.is_terminal


@contextmanager
def progress(
    total: int | None, *, description: str, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while the block runs; yields `advance(n)`. When not `enabled`
    nothing is drawn and `advance` does nothing."""
    if not enabled:
        yield lambda n: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RowRate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
    )
    with bar:
        task = bar.add_task(escape(description), total=total)
        yield lambda n: bar.advance(task, n)


class _RowRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} rows/s" if task.speed else "", style="progress.data.speed")


@contextmanager
def byte_progress(
    total: int | None, *, description: str, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """Like `progress`, counting bytes: MB done of MB, MB/s. Yields `advance(n_bytes)`."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    if not enabled:
        yield lambda n: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
    )
    with bar:
        task = bar.add_task(escape(description), total=total)
        yield lambda n: bar.advance(task, n)
