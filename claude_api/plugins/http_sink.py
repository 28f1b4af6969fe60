"""The built-in HTTP sink: in team mode it takes the recorder's place, sending usage events to a
claude-api server (`POST /v1/events`) instead of writing a database.

Every batch is delivered or kept: what the server cannot take now (unreachable, 5xx, 429, too
slow) goes to the durable spool (`claude_api.spool`) before the batch counts as stored, and
waits there, in order, for the next batch, hook call, import or `claude-api spool flush`. While
records wait, new events are spooled behind them, so the server sees each producer's events
in the order they were emitted. What the server refuses for good (a 409 for events whose ids
belong to other invocations, any 4xx but 429) is set aside as dead letters, counted and logged,
and never blocks the rest.

The sink raises only when an event could be neither delivered nor spooled (the spool is full
or the disk refuses): the tracker then counts the batch as not stored, so an import reads the
transcripts again next time and the hook leaves its state unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from claude_api.errors import TrackingError
from claude_api.events import UsageEvent
from claude_api.plugins.hookspecs import hookimpl
from claude_api.sender import Refusal, Sender, Unreachable
from claude_api.spool import Spool

logger = logging.getLogger(__name__)

SINK_NAME = "http-sink"
REQUEST_EVENTS = 1_000  # events per request (the server takes up to 10,000)


@dataclass
class SinkStats:
    """Events the server took (sent now or from the spool), events spooled, events set aside
    as dead letters."""

    delivered: int = 0
    from_spool: int = 0
    spooled: int = 0
    dead: int = 0
    last_problem: str | None = None


@dataclass(frozen=True)
class FlushResult:
    """What one delivery of the spool did: events delivered and set aside; `busy` when another
    process was delivering; `stopped` says why records are still waiting, if they are."""

    delivered: int = 0
    dead: int = 0
    busy: bool = False
    stopped: str | None = None


def to_wire(event: UsageEvent) -> dict[str, Any]:
    """The event as `POST /v1/events` takes it."""
    return event.model_dump(mode="json", exclude_none=True)


class HttpSink:
    """Sends events with `sender` (None: only spool them, as when no server is configured yet)
    and keeps what it cannot send in `spool`."""

    def __init__(
        self,
        sender: Sender | None,
        spool: Spool,
        *,
        request_events: int = REQUEST_EVENTS,
        flush_seconds: float | None = None,
    ) -> None:
        self.sender = sender
        self.spool = spool
        self.request_events = request_events
        self.flush_seconds = flush_seconds  # how long a batch may spend delivering the spool
        self.stats = SinkStats()
        self._down_until = 0.0  # monotonic: this process does not try the server before then

    @hookimpl
    def usage_batch(self, events: Sequence[UsageEvent]) -> None:
        wire = [to_wire(event) for event in events]
        if self.spool.pending() and self._may_send():
            self.flush(seconds=self.flush_seconds)
        for start in range(0, len(wire), self.request_events):
            chunk = wire[start : start + self.request_events]
            if not self._may_send() or self.spool.pending():
                if self.stats.last_problem is None:
                    self.stats.last_problem = self._why_held()
                self._keep(chunk)  # behind the records already waiting, in order
                continue
            assert self.sender is not None
            sent = self.sender.send(chunk)
            self._set_aside(sent.refused)
            self.stats.delivered += sent.delivered
            if sent.unreachable is not None:
                self._unreachable(sent.unreachable)
                self._keep(sent.remaining)

    def flush(self, *, force: bool = False, seconds: float | None = None) -> FlushResult:
        """Deliver the spool's records in order until none is left, the server cannot take the
        next, `seconds` have passed, or another process is delivering them. `force` tries even
        while delivery is held off (a person asked for it)."""
        if self.sender is None:
            return FlushResult(stopped="no server is configured (CLAUDE_API_URL or login)")
        delivered = dead = 0
        until = None if seconds is None else time.monotonic() + seconds
        with self.spool.delivering() as delivery:
            if delivery is None:
                return FlushResult(busy=True)
            for record in delivery.records():
                if not force and not self._may_send():
                    return FlushResult(delivered, dead, stopped=self._why_held())
                if until is not None and time.monotonic() >= until:
                    stopped = f"{seconds:.1f} s spent delivering; the rest waits"
                    return FlushResult(delivered, dead, stopped=stopped)
                sent = self.sender.send(record.events, record.body)
                if sent.unreachable is not None:
                    # The record stays whole; what of it the server took or refused is taken
                    # or refused again next time (the event ids make that harmless).
                    self._unreachable(sent.unreachable)
                    return FlushResult(delivered, dead, stopped=sent.unreachable.reason)
                dead += self._set_aside(sent.refused)
                delivered += sent.delivered
                self.stats.from_spool += sent.delivered
                delivery.done(record)
        if delivered:
            logger.info("delivered %d spooled usage events", delivered)
        return FlushResult(delivered, dead)

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()

    def _may_send(self) -> bool:
        if self.sender is None or time.monotonic() < self._down_until:
            return False
        return self.spool.held() is None

    def _why_held(self) -> str:
        if self.sender is None:
            return "no server is configured (CLAUDE_API_URL or login)"
        held = self.spool.held()
        if held is not None:
            return f"delivery held off for {held[0] - time.time():.0f} s: {held[1]}"
        if self.spool.pending():
            return "earlier events wait in the spool"
        return self.stats.last_problem or "the server could not be reached"

    def _keep(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), self.request_events):
            chunk = events[start : start + self.request_events]
            try:
                self.spool.append(chunk)
            except OSError as error:
                raise TrackingError(
                    f"{len(chunk)} usage events could be neither delivered nor spooled: {error}"
                ) from error
            self.stats.spooled += len(chunk)

    def _set_aside(self, refusals: list[Refusal]) -> int:
        count = 0
        for refusal in refusals:
            self.spool.dead_letter(refusal.events, status=refusal.status, reason=refusal.reason)
            count += len(refusal.events)
        self.stats.dead += count
        return count

    def _unreachable(self, unreachable: Unreachable) -> None:
        assert self.sender is not None
        policy = self.sender.policy
        if self.stats.last_problem is None:
            logger.warning(
                "the server at %s cannot take usage events now (%s); spooling them in %s",
                self.sender.url,
                unreachable.reason,
                self.spool.directory,
            )
        self.stats.last_problem = unreachable.reason
        self._down_until = time.monotonic() + policy.hold_seconds
        if unreachable.timed_out or unreachable.retry_after is not None:
            # Other processes (the next hook calls) should not wait for it again either.
            seconds = unreachable.retry_after
            self.spool.hold(policy.hold_seconds if seconds is None else seconds, unreachable.reason)
