"""The server's alert evaluator: it measures every rule over the rollups shortly after data
changes (debounced: at most once every `MIN_INTERVAL_SECONDS`, and at least once every
`IDLE_INTERVAL_SECONDS` so that windows slide without writes), records each firing and
resolution once (`models.alerts.record_change`, safe with several server processes), and
delivers each to its rule's webhook: a JSON body with a Slack-compatible `text`, retried with
backoff, once per event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from functools import partial

import httpx
from sqlmodel import Session

from claude_api.models.alert_deliveries import claim_deliveries, finish_delivery
from claude_api.models.alerts import (
    METRIC_WORDS,
    AlertEvent,
    AlertRule,
    AlertState,
    Change,
    note_evaluation,
    record_change,
    window_text,
)
from claude_api.models.db import write_engine
from claude_api.models.queries.alerts import (
    Measure,
    has_pending_deliveries,
    list_rules,
    measure_rule,
)
from claude_api.server.services import Services

logger = logging.getLogger(__name__)

MIN_INTERVAL_SECONDS = 5.0
IDLE_INTERVAL_SECONDS = 60.0
POLL_SECONDS = 1.0
RETRY_DELAYS = (1.0, 4.0, 15.0)  # seconds before the 2nd, 3rd and 4th attempt
WEBHOOK_TIMEOUT_SECONDS = 10.0
SIGNS = {Change.FIRED: ":rotating_light: FIRING", Change.RESOLVED: ":white_check_mark: RESOLVED"}


def describe(rule: AlertRule, change: Change, measure: Measure) -> str:
    """The event in words, the webhook's `text`."""
    if measure.value is None:
        now = f"cannot be told from {measure.sample:,} invocations (fewer than {rule.min_sample:,})"
    else:
        now = f"is {rule.shown(measure.value)} ({measure.sample:,} invocations)"
    side = "above" if change is Change.FIRED else "no longer above"
    return (
        f"{SIGNS[change]}: {METRIC_WORDS[rule.metric]} of {rule.subject} over the last "
        f"{window_text(rule.window_seconds)} {now}, {side} {rule.shown(rule.threshold)} "
        f"(rule {rule.id})"
    )


def webhook_body(event: AlertEvent) -> dict[str, object]:
    """What a webhook receives: `text` for Slack and chat tools, and the event's fields."""
    return {
        "text": event.message,
        "change": event.change.value,
        "rule_id": event.rule_id,
        "rule": event.rule,
        "value": event.value,
        "threshold": event.threshold,
        "sample": event.sample,
        "project_id": event.project_id,
        "at": event.at.isoformat(),
        "event_id": event.id,
    }


class AlertEvaluator:
    """Evaluates the rules of one service's database while the server runs."""

    def __init__(
        self,
        services: Services,
        *,
        min_interval: float = MIN_INTERVAL_SECONDS,
        idle_interval: float = IDLE_INTERVAL_SECONDS,
        poll: float = POLL_SECONDS,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.services = services
        self.min_interval = min_interval
        self.idle_interval = idle_interval
        self.poll = poll
        self.retry_delays = tuple(retry_delays)
        self.evaluations = 0  # how many times the rules were evaluated (for tests and logs)

    async def run(self, stopping: asyncio.Event) -> None:
        """Evaluate and deliver until `stopping` is set; a failure is logged and tried again."""
        seen: int | object | None = object()  # no version seen yet
        last = complained = -float("inf")
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS) as client:
            while not stopping.is_set():
                try:
                    version = await self.services.latest_version()
                    elapsed = time.monotonic() - last
                    changed = version != seen
                    if (changed and elapsed >= self.min_interval) or elapsed >= self.idle_interval:
                        seen, last = version, time.monotonic()
                        await self.services.run(self.evaluate)
                        self.evaluations += 1
                    await self.deliver(client, stopping)
                except Exception:
                    # The database may be down for a while: say so once a minute, not a second.
                    if time.monotonic() - complained >= IDLE_INTERVAL_SECONDS:
                        complained = time.monotonic()
                        logger.exception("alert evaluation failed; trying again")
                with suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.poll)

    def evaluate(self, now: datetime | None = None) -> list[AlertEvent]:
        """Measure every rule and record what fired or resolved (in a worker thread)."""
        moment = now or datetime.now(UTC)
        engine = self.services.engine
        with self.services.session() as session:
            rules = list_rules(session)
            measures = [(rule, measure_rule(session, rule, now=moment)) for rule in rules]
        events = []
        with Session(write_engine(engine)) as session:
            for rule, measure in measures:
                breaching = measure.breaches(rule)
                change = None
                if breaching and rule.state is AlertState.OK:
                    change = Change.FIRED
                elif not breaching and rule.state is AlertState.FIRING:
                    change = Change.RESOLVED
                if change is None:
                    note_evaluation(session, rule.id, value=measure.value, now=moment)
                    continue
                event = record_change(
                    session,
                    rule,
                    change,
                    value=measure.value,
                    sample=measure.sample,
                    message=describe(rule, change, measure),
                    now=moment,
                )
                if event is not None:
                    logger.warning("%s", event.message)
                    events.append(event)
            session.commit()
        return events

    async def deliver(self, client: httpx.AsyncClient, stopping: asyncio.Event) -> None:
        """Send every pending event to its webhook, each claimed by this process only."""
        claimed = await self.services.run(self._claim)
        for event in claimed:
            delivered, attempts, error = await self._send(client, event, stopping)
            await self.services.run(partial(self._finish, event, delivered, attempts, error))

    def _claim(self) -> list[AlertEvent]:
        with self.services.session() as session:
            if not has_pending_deliveries(session):
                return []  # the usual answer, without taking the write lock
        with Session(write_engine(self.services.engine)) as session:
            claimed = claim_deliveries(session)
            session.commit()
        return claimed

    def _finish(self, event: AlertEvent, delivered: bool, attempts: int, error: str | None) -> None:
        with Session(write_engine(self.services.engine)) as session:
            finish_delivery(
                session,
                event.id,
                delivered=delivered,
                attempts=attempts,
                error=error,
                now=datetime.now(UTC),
            )
            session.commit()
        if not delivered:
            logger.error(
                "alert %d could not be delivered to its webhook after %d attempts: %s",
                event.id,
                attempts,
                error,
            )

    async def _send(
        self, client: httpx.AsyncClient, event: AlertEvent, stopping: asyncio.Event
    ) -> tuple[bool, int, str | None]:
        """POST the event, retrying network errors, 429 and 5xx with backoff."""
        assert event.webhook_url is not None
        error: str | None = None
        delays = (0.0, *self.retry_delays)
        for attempt, delay in enumerate(delays, start=1):
            if delay:
                with suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
            try:
                response = await client.post(event.webhook_url, json=webhook_body(event))
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {failure}"
                continue
            if response.is_success:
                return True, attempt, None
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code != 429 and response.status_code < 500:
                return False, attempt, error  # the receiver refuses it: trying again won't help
        return False, len(delays), error
