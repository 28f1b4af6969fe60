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
STREAM_ROWS = 1000  # rows per chunk a stream yields: few writes, little memory


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
    writer = csv.writer(file) if format is ExportFormat.CSV else None
    if writer is not None and header:
        writer.writerow(COLUMNS)
    for chunk in _chunks(rows, every):
        if writer is not None:
            writer.writerows(chunk)
        else:
            file.write(
                "".join(
                    [_JSON.encode(dict(zip(COLUMNS, row, strict=True))) + "\n" for row in chunk]
                )
            )
        written += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return written


# One encoder for every line: json.dumps with any option builds a new one per call.
_JSON = json.JSONEncoder(ensure_ascii=False)


def stream_rows(rows: Iterable[Sequence[Any]], format: ExportFormat) -> Iterator[str]:
    """The text `write_rows` would write, in chunks of STREAM_ROWS rows."""
    buffer = io.StringIO(newline="")
    if format is ExportFormat.CSV:
        csv.writer(buffer).writerow(COLUMNS)
    for chunk in _chunks(rows, STREAM_ROWS):
        write_rows(chunk, buffer, format, header=False)
        yield _drain(buffer)
    rest = _drain(buffer)
    if rest:
        yield rest  # the header of an empty export


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _chunks(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk
