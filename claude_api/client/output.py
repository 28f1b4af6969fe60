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
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def _console(*, stderr: bool) -> Console:
    # A console per print: it reads the terminal's width (COLUMNS) when it is made.
    from rich.console import Console

    return Console(stderr=stderr)


def __getattr__(name: str) -> Any:
    # `stdout` and `stderr` are made on first use: importing rich costs a CLI's start-up time,
    # which commands that print nothing through it (the hook) should not pay.
    if name in ("stdout", "stderr"):
        return _console(stderr=name == "stderr")
    raise AttributeError(name)


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


def count(value: int | float | None) -> str:
    """A count with thousands separators: 12,345; a whole float (a metric of the API, which is a
    Float even when it counts) as the integer it is."""
    if value is None:
        return MISSING
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}"


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
    from rich.text import Text

    return Text(value.translate(_ESCAPES))


# ---- tables -----------------------------------------------------------------------------------

NAME_MIN_WIDTH = 16  # a name is shortened with an ellipsis down to this width, then columns go
TEXT_MIN_WIDTH = 10  # other text (an error message) is shortened down to this width


@dataclass(frozen=True)
class Column:
    """A table column: `key` of each row, its header, how a value reads, whether it is a number
    (right-aligned), whether it is the row's name (`keep`: never dropped, shortened last), how
    important it is when the terminal is too narrow (`priority`: lower stays longer; by default
    its position), and whether a totals row sums it (`total`)."""

    key: str
    header: str
    format: Callable[[Any], str] = plain
    numeric: bool = False
    no_wrap: bool = False  # kept for callers: no cell of any table wraps
    keep: bool = False
    priority: int | None = None
    total: bool = False


# Invocations without a cost, which a cost sum leaves out: shown only when some row has them.
UNPRICED_COLUMN = Column("unpricedInvocations", "Unpriced", count, numeric=True, total=True)


def priced_columns(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> list[Column]:
    """`columns` without UNPRICED_COLUMN when every row's cost covers all its invocations."""
    if any(row.get(UNPRICED_COLUMN.key) for row in rows):
        return list(columns)
    return [column for column in columns if column.key != UNPRICED_COLUMN.key]


def unpriced_field(totals: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A label/value pair saying how many invocations a total cost leaves out (none if none)."""
    unpriced = totals.get(UNPRICED_COLUMN.key)
    if not unpriced:
        return []
    return [("unpriced", f"{count(unpriced)} of {count(totals['invocations'])} without a cost")]


def totals_row(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> dict[str, Any]:
    """The sums of the `total` columns over `rows`: a sum of known values, None when none is
    known (a cost no row reports stays unknown); other columns are left blank."""
    sums: dict[str, Any] = {}
    for column in columns:
        if column.total:
            known = [row[column.key] for row in rows if row.get(column.key) is not None]
            sums[column.key] = sum(known) if known else None
    return sums


def table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    caption: str | None = None,
    totals: bool = False,
    footer: Mapping[str, Any] | None = None,
) -> FittedTable:
    """A table of `rows` (mappings such as GraphQL results) in `columns`, fitted to the width
    it is printed at: one line per row, long names shortened with an ellipsis, and when even
    that is too wide, the least important columns left out (never the name), and named below
    it. With `totals`, a last row sums the columns marked `total` over `rows`; `footer` is that
    last row as given (totals the API computed), set apart from the rows so no row passes for
    it."""
    rows = list(rows)
    cells = [[format_cell(column, row.get(column.key)) for column in columns] for row in rows]
    footer_cells = None
    if footer is not None:
        footer_cells = [format_cell(column, footer.get(column.key)) for column in columns]
    elif totals and rows and any(column.total for column in columns):
        sums = totals_row(rows, columns)
        footer_cells = [
            format_cell(column, sums[column.key]) if column.total else "" for column in columns
        ]
        name = _name_index(columns)
        if not footer_cells[name]:
            footer_cells[name] = "Total"
    return FittedTable(list(columns), cells, footer_cells, title=title, caption=caption)


def format_cell(column: Column, value: Any) -> str:
    """A value as its column shows it; an unknown one as a dash."""
    return MISSING if value is None else column.format(value)


def _name_index(columns: Sequence[Column]) -> int:
    """The column that names the row: the one marked `keep`, else the first text column."""
    for index, column in enumerate(columns):
        if column.keep:
            return index
    for index, column in enumerate(columns):
        if not column.numeric:
            return index
    return 0


class FittedTable:
    """A Rich renderable that lays its table out for the width it is given (see `table`)."""

    def __init__(
        self,
        columns: list[Column],
        cells: list[list[str]],
        footer: list[str] | None,
        *,
        title: str | None,
        caption: str | None,
    ) -> None:
        self.columns = columns
        self.cells = cells
        self.footer = footer
        self.title = title
        self.caption = caption

    def fit(self, width: int) -> tuple[list[int], list[int]]:
        """The indexes of the columns shown at `width` and each one's width."""
        from rich.cells import cell_len

        lines = [*self.cells, *([self.footer] if self.footer else [])]
        natural = [
            max([cell_len(column.header), *(cell_len(safe(line[i])) for line in lines)])
            for i, column in enumerate(self.columns)
        ]
        name = _name_index(self.columns)
        smallest = [
            natural[i]
            if column.numeric
            else min(natural[i], NAME_MIN_WIDTH if i == name else TEXT_MIN_WIDTH)
            for i, column in enumerate(self.columns)
        ]
        shown = list(range(len(self.columns)))

        def importance(i: int) -> tuple[int, int]:
            priority = self.columns[i].priority
            return (i if priority is None else priority, i)

        while len(shown) > 1 and _width_of(smallest[i] for i in shown) > width:
            shown.remove(max((i for i in shown if i != name), key=importance))
        # What is left after the numbers goes to the text columns, the name first.
        room = (
            width
            - _width_of(0 for _ in shown)
            - sum(natural[i] for i in shown if self.columns[i].numeric)
        )
        texts = sorted((i for i in shown if not self.columns[i].numeric), key=lambda i: i != name)
        widths = {i: natural[i] for i in shown}
        for position, i in enumerate(texts):
            others = sum(smallest[j] for j in texts[position + 1 :])
            widths[i] = max(1, min(natural[i], room - others))
            room -= widths[i]
        return shown, [widths[i] for i in shown]

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        shown, widths = self.fit(options.max_width)
        captions = [self.caption] if self.caption else []
        left_out = [column.header for i, column in enumerate(self.columns) if i not in shown]
        if left_out:
            captions.append(f"Not shown at this width: {', '.join(left_out)}.")
        title = safe_text(self.title) if self.title else None
        caption = Text("\n").join(safe_text(line) for line in captions) if captions else None
        heading = max(len(line) for line in [self.title or "", *captions])
        result = Table(
            title=title,
            caption=caption,
            box=box.SIMPLE_HEAD,
            header_style="bold",
            title_style="bold",
            title_justify="left",
            caption_justify="left",
            # A title wider than the columns widens the table (up to the terminal) rather than
            # wrapping over two lines.
            min_width=min(heading, options.max_width) or None,
        )
        for i, width in zip(shown, widths, strict=True):
            column = self.columns[i]
            result.add_column(
                column.header,
                justify="right" if column.numeric else "left",
                no_wrap=True,
                overflow="ellipsis",
                max_width=width,
            )
        for line in self.cells:
            result.add_row(*(safe_text(line[i]) for i in shown))
        if self.footer:
            if result.rows:
                result.rows[-1].end_section = True
            result.add_row(*(safe_text(self.footer[i]) for i in shown), style="bold")
        yield result


def _width_of(column_widths: Iterable[int]) -> int:
    """The width of a SIMPLE_HEAD table whose columns are this wide: one space of padding each
    side of every cell, a space between columns and at each edge."""
    widths = list(column_widths)
    return sum(widths) + 2 * len(widths) + max(len(widths) - 1, 0) + 2


def safe(value: str) -> str:
    """`value` with control and bidirectional characters as visible escapes."""
    return value.translate(_ESCAPES)


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    caption: str | None = None,
    totals: bool = False,
    footer: Mapping[str, Any] | None = None,
) -> None:
    """Print a table of `rows` on stdout, fitted to the terminal (see `table`)."""
    _console(stderr=False).print(
        table(rows, columns, title=title, caption=caption, totals=totals, footer=footer)
    )


def print_fields(fields: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
    """Print label/value pairs as a two-column table on stdout."""
    from rich.table import Table

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
    _console(stderr=False).print(result)


def print_heading(text: str) -> None:
    """Print a section's heading on stdout, bold as table titles are."""
    _console(stderr=False).print(safe_text(text), style="bold", highlight=False)


def print_line(text: str = "") -> None:
    """Print a line of data on stdout, as is."""
    _console(stderr=False).print(safe_text(text), highlight=False)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout."""
    _console(stderr=False).out(json.dumps(data, indent=2, default=str), highlight=False)


# ---- diagnostics ------------------------------------------------------------------------------


def error(message: str) -> None:
    """A one-sentence error on stderr."""
    from rich.markup import escape

    _console(stderr=True).print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True
    )


def info(message: str) -> None:
    """A diagnostic on stderr."""
    from rich.markup import escape

    _console(stderr=True).print(escape(message), highlight=False, soft_wrap=True)


def interactive() -> bool:
    """Whether a person is watching: stdout and stderr are both terminals."""
    return _console(stderr=False).is_terminal and _console(stderr=True).is_terminal


@contextmanager
def progress(
    total: int | None, *, description: str, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while the block runs; yields `advance(n)`. When not `enabled`
    nothing is drawn and `advance` does nothing."""
    if not enabled:
        yield lambda n: None
        return
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _row_rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
    )
    with bar:
        task = bar.add_task(escape(description), total=total)
        yield lambda n: bar.advance(task, n)


def _row_rate() -> Any:
    """A progress column of rows per second."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RowRate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = f"{task.speed:,.0f} rows/s" if task.speed else ""
            return Text(speed, style="progress.data.speed")

    return RowRate()


@contextmanager
def byte_progress(
    total: int | None, *, description: str, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """Like `progress`, counting bytes: MB done of MB, MB/s. Yields `advance(n_bytes)`."""
    if not enabled:
        yield lambda n: None
        return
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
    )
    with bar:
        task = bar.add_task(escape(description), total=total)
        yield lambda n: bar.advance(task, n)
