"""Writing exported invocations into a file that appears only once it is complete, and the
rows of the GraphQL listing as exported rows (the formats are in `claude_api.exports`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from claude_api.exports import ExportFormat, escape_formula, write_rows

__all__ = [
    "EXPORT_COLUMNS",
    "ExportFormat",
    "RowCounter",
    "atomic_file",
    "escape_formula",
    "export_row",
    "write_rows",
]

# GraphQL field of an `InvocationRecord` -> the exported column (`claude_api.exports.COLUMNS`).
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
WRITE_BUFFER = 1 << 20  # bytes per write of an export file: few system calls for millions of rows
LOWER_CASE = ("kind", "status", "cost_source")  # GraphQL enum names, exported as the wire's values


def export_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """An `InvocationRecord` from the GraphQL API as an exported row."""
    row = {column: item.get(field) for field, column in EXPORT_COLUMNS.items()}
    for column in LOWER_CASE:
        if isinstance(row[column], str):
            row[column] = row[column].lower()
    return row


class RowCounter:
    """Counts the rows of an export's text as it arrives in chunks: lines, less the CSV header,
    a CSV line break inside a quoted cell (an error message on two lines) not counted."""

    def __init__(self, format: ExportFormat) -> None:
        self._csv = format is ExportFormat.CSV
        self._quoted = False  # whether the text so far ends inside a quoted CSV cell
        self._lines = 0

    def add(self, chunk: str) -> int:
        """Count `chunk`; how many rows it ended."""
        before = self.rows
        if not self._csv or (not self._quoted and '"' not in chunk):
            self._lines += chunk.count("\n")
            return self.rows - before
        # Between two quote characters the text is inside a cell (a doubled quote closes and
        # reopens it, which changes nothing), so a line ends only in the pieces outside.
        for index, piece in enumerate(chunk.split('"')):
            if index:
                self._quoted = not self._quoted
            if not self._quoted:
                self._lines += piece.count("\n")
        return self.rows - before

    @property
    def rows(self) -> int:
        return max(self._lines - 1, 0) if self._csv else self._lines


@contextmanager
def atomic_file(path: Path) -> Iterator[TextIO]:
    """A text file that becomes `path` when the block ends without an error; until then it is a
    hidden temporary file beside it, removed if the block fails or is interrupted."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="", buffering=WRITE_BUFFER) as file:
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
