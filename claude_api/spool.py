"""The durable spool: usage events a producer could not deliver to the server, kept on disk in
order until a later hook call, import or `claude-api spool flush` delivers them.

The spool is a private directory of append-only segment files, one JSON line per record (the
body of one `POST /v1/events` request). A record is written and synced to disk before
`append` returns, so whatever a producer acknowledged survives a crash or a kill; a line torn by
a kill mid-write was never acknowledged, and is skipped (counted, logged). A cursor file says
how far delivery got: records are read in order, and a record is passed only after it was
delivered (or set aside), so a crash in between delivers it again, which the event ids make
harmless. Fully delivered segments are removed.

Records the server refused (a 4xx other than 429) are moved to the dead letters beside the
spool, with the reason, and counted. The spool is bounded: past `max_bytes` a record is refused
(`SpoolFull`), and the refusal counted and logged.

Several processes share one spool: appends take a short lock; one delivery at a time takes
another (`delivering`), without holding up appends.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from claude_api.errors import TrackingError
from claude_api.files import PRIVATE, atomic_write, private_directory

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 2**20
SEGMENT_BYTES = 8 * 2**20  # a new segment once the last holds this much
_SEGMENT = "segment-{:08d}.jsonl"
_DEAD = "dead-letters.jsonl"
_CURSOR = "cursor.json"
_COUNTS = "counts.json"
_HOLD = "hold.json"
_APPEND = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class SpoolFull(TrackingError):
    """The spool holds `max_bytes` already: the record was not kept (counted and logged)."""


@dataclass(frozen=True)
class Record:
    """One spooled request: its body (`{"events": [...]}`), how many events it holds, and
    where it ends (segment number, byte offset): the cursor once it is delivered."""

    body: bytes
    events: list[dict[str, Any]]
    segment: int
    end: int


@dataclass(frozen=True)
class SpoolStatus:
    """What the spool holds: records and events waiting, their bytes, events set aside as dead
    letters, records refused because the spool was full, torn lines skipped, and until when
    delivery is held off (a slow or busy server) and why."""

    directory: Path
    records: int
    events: int
    bytes: int
    dead_events: int
    overflowed_records: int
    overflowed_events: int
    corrupt_lines: int
    held_until: datetime | None
    held_because: str | None

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["directory"] = str(self.directory)
        data["held_until"] = self.held_until.isoformat() if self.held_until else None
        return data


def encode(events: Sequence[dict[str, Any]]) -> bytes:
    """The request body of a batch of wire-form events, as one line (orjson never writes a
    newline inside)."""
    return orjson.dumps({"events": list(events)})


class Spool:
    """The spool in `directory` (created private on first write)."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    # ---- producers -------------------------------------------------------------------------

    def append(self, events: Sequence[dict[str, Any]]) -> None:
        """Keep `events` as one record, on disk before this returns. Raises SpoolFull when the
        spool is full, OSError when the disk refuses."""
        line = encode(events) + b"\n"
        with self._locked("append"):
            segments = self._segments()
            cursor = self._cursor()
            waiting = self._waiting_bytes(segments, cursor)
            if waiting + len(line) > self.max_bytes:
                self._count("overflowed_records", 1, locked=True)
                self._count("overflowed_events", len(events), locked=True)
                refused = self._counts()["overflowed_records"]
                logger.error(
                    "the spool in %s is full (%d bytes waiting, at most %d): %d events not "
                    "kept (%d records refused so far)",
                    self.directory,
                    waiting,
                    self.max_bytes,
                    len(events),
                    refused,
                )
                raise SpoolFull(
                    f"the spool is full ({waiting:,} bytes waiting, at most {self.max_bytes:,}); "
                    f"{len(events)} events not kept"
                )
            self._append_record(line, segments, cursor)

    def _append_record(
        self, line: bytes, segments: list[tuple[int, int]], cursor: tuple[int, int]
    ) -> None:
        """Append a record's line to the last segment (a new one once it is full); the append
        lock is held."""
        number = segments[-1][0] if segments else cursor[0]
        if segments and segments[-1][1] >= SEGMENT_BYTES:
            number += 1
        self._append_line(self.directory / _SEGMENT.format(number), line)

    def pending(self) -> bool:
        """Whether any record waits for delivery (cheap: a directory listing and a stat)."""
        segments = self._segments()
        if not segments:
            return False
        segment, offset = self._cursor()
        return not (len(segments) == 1 and segments[0] == (segment, offset))

    def dead_letter(
        self, events: Sequence[dict[str, Any]], *, status: int | None, reason: str
    ) -> None:
        """Set `events` aside for good, with why the server refused them (synced to disk)."""
        record = {
            "at": datetime.now(UTC).isoformat(),
            "status": status,
            "reason": reason,
            "events": list(events),
        }
        with self._locked("append"):
            self._append_line(self.directory / _DEAD, orjson.dumps(record) + b"\n")
        logger.error(
            "%d usage events set aside as dead letters in %s (HTTP %s): %s",
            len(events),
            self.directory / _DEAD,
            status if status is not None else "-",
            reason,
        )

    def requeue(self) -> int:
        """Move the dead letters back into the spool, behind what waits (once the cause is
        fixed: a new key, say); returns how many events. Raises SpoolFull, changing nothing,
        when they do not fit."""
        with self._locked("append"):
            lines = [line for line, _end in _lines(self.directory / _DEAD, 0)]
            records = []
            for line in lines:
                try:
                    records.append(orjson.loads(line)["events"])
                except (ValueError, KeyError, TypeError):
                    continue
            encoded = [encode(events) + b"\n" for events in records]
            segments, cursor = self._segments(), self._cursor()
            if self._waiting_bytes(segments, cursor) + sum(map(len, encoded)) > self.max_bytes:
                raise SpoolFull("the dead letters do not fit in the spool; nothing was moved")
            for line in encoded:
                self._append_record(line, self._segments(), cursor)
            (self.directory / _DEAD).unlink(missing_ok=True)
        return sum(len(events) for events in records)

    # ---- delivery --------------------------------------------------------------------------

    @contextmanager
    def delivering(self) -> Iterator[Delivery | None]:
        """The spool's records for this process to deliver, in order; None when another
        process is delivering them now (it will deliver what is appended meanwhile, too)."""
        private_directory(self.directory)
        descriptor = os.open(self.directory / "deliver.lock", os.O_RDWR | os.O_CREAT, PRIVATE)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            delivery = Delivery(self)
            try:
                yield delivery
            finally:
                delivery.tidy()
        finally:
            os.close(descriptor)

    # ---- holding off a slow or busy server -------------------------------------------------

    def hold(self, seconds: float, reason: str) -> None:
        """Deliver nothing for `seconds` (every process): the server is slow or asked to wait;
        records are spooled at once meanwhile instead of waiting for it again."""
        hold = {"until": time.time() + seconds, "reason": reason}
        with self._locked("append"), atomic_write(self.directory / _HOLD) as file:
            file.write(orjson.dumps(hold).decode())

    def release(self) -> None:
        """Deliver again at once (the server answered)."""
        (self.directory / _HOLD).unlink(missing_ok=True)

    def held(self) -> tuple[float, str] | None:
        """Until when (a `time.time()` value) and why delivery is held off, if it is now."""
        try:
            data = orjson.loads((self.directory / _HOLD).read_bytes())
            until, reason = float(data["until"]), str(data["reason"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (until, reason) if until > time.time() else None

    # ---- status ----------------------------------------------------------------------------

    def status(self) -> SpoolStatus:
        """Count what waits, what was set aside and what was refused."""
        records = events = 0
        segments = self._segments()
        cursor = self._cursor()
        for number, _size in segments:
            if number < cursor[0]:
                continue
            start = cursor[1] if number == cursor[0] else 0
            for line, _end in _lines(self.directory / _SEGMENT.format(number), start):
                parsed = _parse(line)
                if parsed is not None:
                    records += 1
                    events += len(parsed)
        dead = 0
        for line, _end in _lines(self.directory / _DEAD, 0):
            try:
                dead += len(orjson.loads(line)["events"])
            except (ValueError, KeyError, TypeError):
                continue
        counts = self._counts()
        held = self.held()
        return SpoolStatus(
            directory=self.directory,
            records=records,
            events=events,
            bytes=self._waiting_bytes(segments, cursor),
            dead_events=dead,
            overflowed_records=counts.get("overflowed_records", 0),
            overflowed_events=counts.get("overflowed_events", 0),
            corrupt_lines=counts.get("corrupt_lines", 0),
            held_until=datetime.fromtimestamp(held[0], UTC) if held else None,
            held_because=held[1] if held else None,
        )

    # ---- files -----------------------------------------------------------------------------

    def _segments(self) -> list[tuple[int, int]]:
        """(number, size) of each segment file, in order."""
        found = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            name = entry.name
            if name.startswith("segment-") and name.endswith(".jsonl"):
                try:
                    found.append((int(name[8:-6]), entry.stat().st_size))
                except (ValueError, OSError):
                    continue
        return sorted(found)

    def _cursor(self) -> tuple[int, int]:
        try:
            data = orjson.loads((self.directory / _CURSOR).read_bytes())
            return int(data["segment"]), int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return 1, 0

    def _save_cursor(self, segment: int, offset: int) -> None:
        with atomic_write(self.directory / _CURSOR) as file:
            file.write(orjson.dumps({"segment": segment, "offset": offset}).decode())

    def _waiting_bytes(self, segments: list[tuple[int, int]], cursor: tuple[int, int]) -> int:
        return sum(
            size - (cursor[1] if number == cursor[0] else 0)
            for number, size in segments
            if number >= cursor[0]
        )

    def _counts(self) -> dict[str, int]:
        try:
            return dict(orjson.loads((self.directory / _COUNTS).read_bytes()))
        except (OSError, ValueError, TypeError):
            return {}

    def _save_counts(self, counts: dict[str, int]) -> None:
        with atomic_write(self.directory / _COUNTS) as file:
            file.write(orjson.dumps(counts).decode())

    def _count(self, name: str, amount: int, *, locked: bool = False) -> None:
        if not locked:
            with self._locked("append"):
                self._count(name, amount, locked=True)
            return
        counts = self._counts()
        counts[name] = counts.get(name, 0) + amount
        self._save_counts(counts)

    def _append_line(self, path: Path, line: bytes) -> None:
        """Append `line` to `path` and sync it; a line torn by a killed writer before it is
        ended first, so that it stays one (skipped) line of its own."""
        created = not path.exists()
        descriptor = os.open(path, _APPEND, PRIVATE)
        try:
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                line = b"\n" + line
            view = memoryview(line)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if created:
            _sync_directory(self.directory)

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        private_directory(self.directory)
        descriptor = os.open(self.directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, PRIVATE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


class Delivery:
    """The records of a spool, read in order by the one process delivering them."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def records(self) -> Iterator[Record]:
        """Every waiting record, oldest first, those appended meanwhile included. Call `done`
        with each record once it was delivered or set aside, before asking for the next."""
        spool = self.spool
        while True:
            segment, offset = spool._cursor()
            segments = spool._segments()
            later = [number for number, _ in segments if number > segment]
            found = False
            for line, end in _lines(spool.directory / _SEGMENT.format(segment), offset):
                events = _parse(line)
                if events is None:
                    spool._count("corrupt_lines", 1)
                    logger.error(
                        "skipped a torn line in the spool (%s, bytes %d-%d): a write that was "
                        "cut off before it was acknowledged",
                        _SEGMENT.format(segment),
                        offset,
                        end,
                    )
                    spool._save_cursor(segment, end)
                    offset = end
                    continue
                found = True
                yield Record(body=line, events=events, segment=segment, end=end)
                offset = end
            if found:
                continue  # read the segment again: records may have been appended meanwhile
            if not later:
                return
            # Appends go to the last segment only: this one is complete, and delivered.
            spool._save_cursor(later[0], 0)
            (spool.directory / _SEGMENT.format(segment)).unlink(missing_ok=True)

    def done(self, record: Record) -> None:
        """`record` was delivered (or set aside): move the cursor past it."""
        self.spool._save_cursor(record.segment, record.end)

    def tidy(self) -> None:
        """Remove the segments that were delivered entirely; a line torn at the very end by a
        killed writer (nothing is appending now) goes with them."""
        spool = self.spool
        with spool._locked("append"):
            segments = spool._segments()
            segment, offset = spool._cursor()
            if not segments or [number for number, _ in segments] != [segment]:
                return
            path = spool.directory / _SEGMENT.format(segment)
            if any(True for _ in _lines(path, offset)):
                return  # complete records still wait
            size = segments[0][1]
            if size > offset:
                spool._count("corrupt_lines", 1, locked=True)
                logger.error("removed a torn line at the spool's end (%d bytes)", size - offset)
            spool._save_cursor(segment + 1, 0)
            path.unlink(missing_ok=True)


def _lines(path: Path, offset: int) -> Iterator[tuple[bytes, int]]:
    """The complete lines of `path` from byte `offset`, each without its newline, with the
    offset just past it; an unfinished last line (being written) is not one."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    with file:
        file.seek(offset)
        for line in file:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            yield line[:-1], offset


def _parse(line: bytes) -> list[dict[str, Any]] | None:
    try:
        events = orjson.loads(line)["events"]
    except (ValueError, KeyError, TypeError):
        return None
    return events if isinstance(events, list) else None


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
