"""Invocations as exported rows, the same from the CLI and the server's export endpoint: the
columns (the usage event's wire names), CSV with cells a spreadsheet would run as formulas
escaped, and JSON Lines.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Protocol, TextIO
from uuid import UUID

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


def record_row(record: Any) -> dict[str, Any]:
    """An `InvocationRecord` of the query layer as an exported row: enums as their wire values,
    ids as text, times in ISO 8601 with their offset."""
    return {column: _plain(getattr(record, column)) for column in COLUMNS}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def escape_formula(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made plain text with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class RowWriter(Protocol):
    def write(self, rows: Iterable[Mapping[str, Any]]) -> None: ...


class CsvWriter:
    """CSV with a header row; empty cells for missing values."""

    def __init__(self, file: TextIO) -> None:
        self._writer = csv.writer(file)
        self._writer.writerow(COLUMNS)

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._writer.writerows([escape_formula(value) for value in row.values()] for row in rows)


class JsonLinesWriter:
    """One JSON object per line; null for missing values."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def row_writer(file: TextIO, format: ExportFormat) -> RowWriter:
    return CsvWriter(file) if format is ExportFormat.CSV else JsonLinesWriter(file)


def write_records(records: Iterable[Any], file: TextIO, format: ExportFormat) -> int:
    """Write query-layer records to `file` as `format`, header included; how many rows."""
    writer = row_writer(file, format)
    written = 0
    for chunk in _chunks(records):
        writer.write(record_row(record) for record in chunk)
        written += len(chunk)
    return written


def stream_records(records: Iterable[Any], format: ExportFormat) -> Iterator[str]:
    """The text of the export of `records` as `format`, in chunks of STREAM_ROWS rows."""
    buffer = io.StringIO(newline="")
    writer = row_writer(buffer, format)
    for chunk in _chunks(records):
        writer.write(record_row(record) for record in chunk)
        yield _drain(buffer)
    rest = _drain(buffer)
    if rest:
        yield rest  # the header of an empty export


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _chunks(records: Iterable[Any]) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == STREAM_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
