"""Hand usage events to the tracker so that tracking can never fail or hold up the task."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from claude_api.events import Status, UsageEvent
from claude_api.tracking import Tracker

logger = logging.getLogger(__name__)


def build_event(**fields: Any) -> UsageEvent | None:
    """A usage event from `fields`, or None (logged) when they do not make a valid one."""
    try:
        return UsageEvent(**fields)
    except ValidationError as error:
        logger.error("usage event not tracked, invalid fields: %s", error)
        return None


def finish_event(start: UsageEvent | None, status: Status, **changes: Any) -> UsageEvent | None:
    """The finish of `start`, or None (logged) when there is no start or the changes are invalid."""
    if start is None:
        return None
    try:
        return start.finish(status, **changes)
    except ValidationError as error:
        logger.error("finish of %s %r not tracked: %s", start.kind, start.name, error)
        return None


class EventSink:
    """Queues events on a tracker; a failing tracker is logged, never raised to the runner."""

    def __init__(self, tracker: Tracker | None) -> None:
        self.tracker = tracker
        self.failures = 0

    def __call__(self, event: UsageEvent | None) -> None:
        if event is None or self.tracker is None:
            return
        try:
            self.tracker.emit(event)
        except Exception:
            self.failures += 1
            if self.failures == 1:
                logger.exception("tracking failed; the task goes on without it")
