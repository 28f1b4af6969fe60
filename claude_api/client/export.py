"""Writing exported invocations: one row per invocation as CSV (cells that a spreadsheet would
run as formulas escaped) or JSON Lines, into a file that appears only once it is complete.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TextIO

# GraphQL field of an `InvocationRecord` -> the exported column: the usage event's wire names,
# so that a JSON line reads like the event that recorded it.
EXPORT_COLUMNS = {
    "kind": "kind",
    "name": "name",
    "eventId": "event_id",
    "taskId": "task_id",
    "parentId": "parent_id",
    "projectId": "project_id",
    "status": "status",
    "timestamp": "timestamp",
    "finishedAt": "finished_at",
    "durationSeconds": "duration_seconds",
    "costUsd": "cost_usd",
    "costSource": "cost_source",
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheReadTokens": "cache_read_tokens",
    "cacheCreationTokens": "cache_creation_tokens",
    "model": "model",
    "errorMessage": "error_message",
    "source": "source",
}
LOWER_CASE = ("kind", "status", "cost_source")  # GraphQL enum names, exported as the wire's values
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"

    @classmethod
    def for_path(cls, path: Path) -> ExportFormat | None:
        """The format a file name asks for (.csv, .jsonl or .ndjson); None for any other."""
        return SUFFIXES.get(path.suffix.lower())


SUFFIXES = {".csv": ExportFormat.CSV, ".jsonl": ExportFormat.JSONL, ".ndjson": ExportFormat.JSONL}


def export_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """An `InvocationRecord` from the API as an exported row."""
    row = {column: item.get(field) for field, column in EXPORT_COLUMNS.items()}
    for column in LOWER_CASE:
        if isinstance(row[column], str):
            row[column] = row[column].lower()
    return row


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
        self._writer.writerow(EXPORT_COLUMNS.values())

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


@contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """A text file that becomes `path` when the block ends without an error; until then it is a
    hidden temporary file beside it, removed if the block fails or is interrupted."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private; give the export the permissions of any new file.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
