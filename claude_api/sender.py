"""Sending usage events to a claude-api server: `POST /v1/events`, retried with backoff while
the server cannot be reached, fails (5xx) or asks to wait (429, honouring Retry-After); a
request that timed out is not retried (the caller spools the batch and holds off a while).

What the server refuses is not retried: a 409 names the events whose ids belong to other
invocations, which are set aside while the rest of the batch is sent again; a 413 splits the
batch; any other 4xx sets the batch aside. The caller decides what "set aside" means (the HTTP
sink writes dead letters) and what to do with events it could not deliver (spool them).
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from claude_api.spool import encode

logger = logging.getLogger(__name__)

EVENTS_PATH = "/v1/events"
_POSITION = re.compile(r"^events\[(\d+)\]")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long a producer may spend delivering one batch: the connect and read timeouts of a
    request, how many attempts, and the seconds all attempts together may take (a Retry-After
    longer than what is left is not waited for). After the server timed out or asked to wait,
    delivery is held off `hold_seconds` (or as long as it asked), every batch spooled at once.
    `flush_seconds` bounds the time spent delivering the spool before a producer's own events
    (None: until it is empty)."""

    connect_timeout: float
    read_timeout: float
    attempts: int
    budget: float
    hold_seconds: float
    flush_seconds: float | None = None


# The hook runs inside Claude Code's session: a few seconds at most, then the spool.
HOOK_POLICY = DeliveryPolicy(
    connect_timeout=0.5,
    read_timeout=2.0,
    attempts=2,
    budget=2.5,
    hold_seconds=30.0,
    flush_seconds=3.0,
)
# An import, a run or `spool flush` can wait longer for a busy server.
BULK_POLICY = DeliveryPolicy(
    connect_timeout=5.0, read_timeout=60.0, attempts=6, budget=60.0, hold_seconds=30.0
)


@dataclass(frozen=True)
class Unreachable:
    """Why the server could not take a batch now: `reason`, whether it timed out, and the
    seconds it asked to wait (Retry-After of a 429 or 503), if it did."""

    reason: str
    timed_out: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class Refusal:
    """Events the server refused for good: the HTTP status and the server's reason."""

    events: list[dict[str, Any]]
    status: int | None
    reason: str


@dataclass
class Sent:
    """What sending a batch came to: events the server took, events it refused, and, when it
    could not be reached, why and the events not sent (in their order)."""

    delivered: int = 0
    refused: list[Refusal] = field(default_factory=list)
    unreachable: Unreachable | None = None
    remaining: list[dict[str, Any]] = field(default_factory=list)


class _Retryable(Exception):
    def __init__(self, unreachable: Unreachable) -> None:
        super().__init__(unreachable.reason)
        self.unreachable = unreachable


class _TimedOut(_Retryable):
    """Not retried: a server too slow now is as slow a moment later, and the producer waits
    for it meanwhile (the batch is spooled instead)."""


class Sender:
    """Posts batches of wire-form events to the server at `url` with the bearer `key`."""

    def __init__(self, url: str, key: str | None, policy: DeliveryPolicy) -> None:
        self.url = url.rstrip("/")
        self.policy = policy
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(
            connect=policy.connect_timeout,
            read=policy.read_timeout,
            write=policy.read_timeout,
            pool=policy.connect_timeout,
        )
        self._client = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)

    def send(self, events: list[dict[str, Any]], body: bytes | None = None) -> Sent:
        """Deliver `events` (`body`, when given, is their encoded batch), in order."""
        sent = Sent()
        waiting: deque[tuple[list[dict[str, Any]], bytes | None]] = deque([(events, body)])
        while waiting:
            batch, encoded = waiting.popleft()
            outcome = self._post(encoded if encoded is not None else encode(batch))
            if isinstance(outcome, Unreachable):
                sent.unreachable = outcome
                sent.remaining = [event for part, _ in [(batch, None), *waiting] for event in part]
                return sent
            status, answer = outcome
            if 200 <= status < 300:
                sent.delivered += len(batch)
                continue
            if status == 409:
                positions = _conflicting(answer, len(batch))
                if positions:
                    sent.refused.append(
                        Refusal([batch[i] for i in sorted(positions)], status, _detail(answer))
                    )
                    rest = [event for i, event in enumerate(batch) if i not in positions]
                    if rest:
                        waiting.appendleft((rest, None))
                    continue
            if status == 413 and len(batch) > 1:
                half = len(batch) // 2
                waiting.extendleft([(batch[half:], None), (batch[:half], None)])
                continue
            sent.refused.append(Refusal(batch, status, _detail(answer)))
        return sent

    def check(self) -> tuple[int, Any]:
        """Ask `/healthz`, then send an empty batch (which stores nothing but needs a key that
        may write); returns the status and answer of the first request that failed, else of
        the empty batch. Raises httpx.HTTPError when the server cannot be reached."""
        health = self._client.get(f"{self.url}/healthz")
        if health.status_code != 200:
            return health.status_code, _answer(health)
        response = self._client.post(f"{self.url}{EVENTS_PATH}", content=encode([]))
        return response.status_code, _answer(response)

    def close(self) -> None:
        self._client.close()

    def _post(self, body: bytes) -> tuple[int, Any] | Unreachable:
        policy = self.policy
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable) & retry_if_not_exception_type(_TimedOut),
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.budget),
            wait=_wait,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._post_once(body)
        except _Retryable as error:
            return error.unreachable
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    def _post_once(self, body: bytes) -> tuple[int, Any]:
        try:
            response = self._client.post(f"{self.url}{EVENTS_PATH}", content=body)
        except httpx.TimeoutException as error:
            timed_out = Unreachable(f"timed out: {_describe(error)}", timed_out=True)
            raise _TimedOut(timed_out) from None
        except httpx.TransportError as error:
            raise _Retryable(Unreachable(f"cannot connect: {_describe(error)}")) from None
        status = response.status_code
        if status == 429 or status >= 500:
            answer = _answer(response)
            raise _Retryable(
                Unreachable(
                    f"HTTP {status}: {_detail(answer)}",
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
            )
        return status, _answer(response)


_backoff = wait_exponential_jitter(multiplier=0.2, max=8.0, jitter=0.2)


def _wait(state: RetryCallState) -> float:
    """Retry-After when the server gave one, else exponential backoff with jitter."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _Retryable) and error.unreachable.retry_after is not None:
        return error.unreachable.retry_after
    return _backoff(state)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _answer(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except ValueError:
        return response.text[:500]


def _detail(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("message") or answer)[:500]
    return str(answer)[:500] or "no reason given"


def _conflicting(answer: Any, size: int) -> set[int]:
    """The positions in the batch of the events a 409 names (`events[3].event_id`)."""
    positions = set()
    problems = answer.get("errors") if isinstance(answer, dict) else None
    for problem in problems or []:
        match = (
            _POSITION.match(str(problem.get("field", ""))) if isinstance(problem, dict) else None
        )
        if match and int(match.group(1)) < size:
            positions.add(int(match.group(1)))
    return positions


def _describe(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
