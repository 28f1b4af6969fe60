"""Invocations as exported rows, the same from the CLI and the server's export endpoint: the
columns (the usage event's wire names), CSV with cells a spreadsheet would run as formulas
escaped, and JSON Lines.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import StrEnum
from json.encoder import encode_basestring
from operator import itemgetter
from pathlib import Path
from typing import Any, TextIO

# The exported columns: the usage event's wire names, so that a JSON line reads like the event
# that recorded it.
COLUMNS = (
    "kind",
    "name",
    "event_id",
    "task_id",
    "parent_id",
    "project_id",
    "status",
    "timestamp",
    "finished_at",
    "duration_seconds",
    "cost_usd",
    "cost_source",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "model",
    "error_message",
    "source",
)
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
STREAM_ROWS = 5000  # rows per chunk a stream yields (about 1 MB of CSV): few writes, flat memory


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"

    @classmethod
    def for_path(cls, path: Path) -> ExportFormat | None:
        """The format a file name asks for (.csv, .jsonl or .ndjson); None for any other."""
        return SUFFIXES.get(path.suffix.lower())


SUFFIXES = {".csv": ExportFormat.CSV, ".jsonl": ExportFormat.JSONL, ".ndjson": ExportFormat.JSONL}
MEDIA_TYPES = {ExportFormat.CSV: "text/csv", ExportFormat.JSONL: "application/x-ndjson"}


def escape_formula(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made plain text with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# The text columns a spreadsheet could read as a formula; ids, enums, times and numbers cannot.
TEXT_COLUMNS = ("name", "task_id", "project_id", "model", "error_message", "source")


def write_rows(
    rows: Iterable[Sequence[Any]],
    file: TextIO,
    format: ExportFormat,
    *,
    header: bool = True,
    progress: Callable[[int], object] | None = None,
    every: int = STREAM_ROWS,
) -> int:
    """Write rows of plain values in COLUMNS order (the query layer's `iter_invocation_rows`)
    to `file` as `format`: CSV with a header row (unless `header` is false) and empty cells for
    missing values, or JSON Lines with null for missing values. Cells are written as they come:
    CSV rows should have formula-like text escaped already (`iter_invocation_rows` does it in
    SQL with `escape_formulas`). Calls `progress` with the number of rows written after every
    `every` of them. Returns how many rows."""
    written = 0
    encode = csv_lines if format is ExportFormat.CSV else jsonl_lines
    if format is ExportFormat.CSV and header:
        file.write(csv_lines([COLUMNS]))
    for chunk in _chunks(rows, every):
        file.write(encode(chunk))
        written += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return written


def csv_lines(rows: Sequence[Sequence[Any]]) -> str:
    """`rows` as the lines `csv.writer` writes (Excel's dialect: cells quoted only when they
    hold a comma, a quote or a line break; None as an empty cell; lines ending in CRLF).

    Most exported rows need no quoting, and joining their cells costs a third of the writer's
    work: the batch is joined, and written again by `csv.writer` if its separators and quotes
    show that a cell needed quoting."""
    lines = [",".join(["" if cell is None else str(cell) for cell in row]) for row in rows]
    lines.append("")
    text = "\r\n".join(lines)
    widths = list(map(len, rows))
    # A cell holding a separator or a line break adds one to the counts, a quote shows; a row
    # of one empty cell is written as "".
    plain = (
        text.count(",") == sum(widths) - len(rows)
        and text.count("\n") == len(rows)
        and text.count("\r") == len(rows)
        and '"' not in text
        and (not widths or min(widths) > 1)
    )
    if plain:
        return text
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


# One encoder for the cells `_json_cells` leaves to it: json.dumps with any option builds a new
# one per call.
_JSON = json.JSONEncoder(ensure_ascii=False)
_NULL = "null"
# What the encoder writes for a cell of these exact types (finite floats only).
_JSON_TEXT: dict[type, Callable[[Any], str]] = {
    str: encode_basestring,
    int: int.__repr__,
    float: float.__repr__,
}
# An object with COLUMNS as keys, spaced as `json.dumps` spaces them, each value a %s.
_JSON_LINE = "{" + ", ".join(f"{_JSON.encode(column)}: %s" for column in COLUMNS) + "}\n"


def jsonl_lines(rows: Sequence[Sequence[Any]]) -> str:
    """`rows` as JSON Lines: an object per row, the COLUMNS as its keys, null for None; each
    line as `json.dumps(dict(zip(COLUMNS, row)), ensure_ascii=False)` writes it.

    The cells are encoded a column at a time (a column's cells share a type), and each line is
    a template filled with them: no dict per row, no key encoded twice."""
    if set(map(len, rows)) - {len(COLUMNS)}:
        raise ValueError(f"an exported row has {len(COLUMNS)} cells")
    columns = [_json_cells(list(map(itemgetter(index), rows))) for index in range(len(COLUMNS))]
    return "".join([_JSON_LINE % cells for cells in zip(*columns, strict=True)])


def _json_cells(cells: Sequence[Any]) -> list[str]:
    """One column's cells as JSON texts."""
    types = set(map(type, cells))
    nullable = type(None) in types
    types.discard(type(None))
    if not types:
        return [_NULL] * len(cells)
    encode = _JSON_TEXT.get(types.pop()) if len(types) == 1 else None
    if encode is not None:
        # A name, a status: each text encoded once (not a float: -0.0 == 0.0).
        distinct = dict.fromkeys(cells) if encode is not float.__repr__ else {}
        if 0 < len(distinct) * 2 < len(cells):
            for cell in distinct:
                distinct[cell] = _NULL if cell is None else encode(cell)
            texts = list(map(distinct.__getitem__, cells))
        elif nullable:
            texts = [_NULL if cell is None else encode(cell) for cell in cells]
        else:
            texts = list(map(encode, cells))
        # A float's repr holds an "n" only when it is nan or inf, which JSON spells otherwise.
        if encode is not float.__repr__ or "".join(texts).count("n") == texts.count(_NULL):
            return texts
    return [_JSON.encode(cell) for cell in cells]


def stream_rows(rows: Iterable[Sequence[Any]], format: ExportFormat) -> Iterator[str]:
    """The text `write_rows` would write, in chunks of STREAM_ROWS rows."""
    encode = csv_lines if format is ExportFormat.CSV else jsonl_lines
    header = csv_lines([COLUMNS]) if format is ExportFormat.CSV else ""
    for chunk in _chunks(rows, STREAM_ROWS):
        yield header + encode(chunk)
        header = ""
    if header:
        yield header  # the header of an empty export


def _chunks(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk
