"""The host side of the usage contract: emit events to every plugin, isolated and off-thread.

`Tracker.emit` is what runners call: it queues the event and returns at once, so tracking
never slows the work it observes. A background thread delivers queued events in batches.
`Tracker.record` delivers synchronously and raises when the store failed, for callers that
must acknowledge a write (HTTP ingest).

An event the store refuses (`EventConflict`: its id belongs to another invocation) is never
retried: `record` raises it for the whole batch; a queued batch is stored without the refused
events, which are logged and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy
from sqlalchemy import Engine

from claude_api.errors import EventConflict, TrackingError
from claude_api.events import Status, UsageEvent
from claude_api.plugins.recorder import RECORDER_NAME

logger = logging.getLogger(__name__)

_STOP = object()
DEFAULT_RETRY_DELAYS = (0.1, 0.5, 2.0)


@dataclass
class TrackerStats:
    """What the tracker did: events emitted, delivered to the store, dropped (the store failed),
    refused (their ids belong to other invocations), plugin failures."""

    emitted: int = 0
    stored: int = 0
    dropped: int = 0
    refused: int = 0
    plugin_failures: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Delivery:
    """How one plugin receives events: the whole batch at once, or one hook call per event."""

    name: str
    batch: Callable[..., Any] | None
    started: Callable[..., Any] | None
    finished: Callable[..., Any] | None


class Tracker:
    """Delivers usage events to the plugins of `manager`; `store` names the plugin that must
    succeed for an event to count as recorded (the built-in recorder)."""

    def __init__(
        self,
        manager: pluggy.PluginManager,
        *,
        store: str | None = RECORDER_NAME,
        queue_size: int = 100_000,
        batch_size: int = 10_000,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        self.manager = manager
        self.store = store
        self.stats = TrackerStats()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._retry_delays = tuple(retry_delays)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False

    # ---- runner side ---------------------------------------------------------------------------

    def emit(self, event: UsageEvent) -> None:
        """Queue `event` for delivery and return at once; never raises, never blocks."""
        with self._idle:
            if self._closed or self._pending >= self._queue_size:
                self.stats.dropped += 1
                if self.stats.dropped == 1 or self.stats.dropped % 10_000 == 0:
                    logger.error(
                        "tracking queue full or closed: %d events dropped", self.stats.dropped
                    )
                return
            self._pending += 1
            self.stats.emitted += 1
            if self._worker is None:
                self._start_worker()
        self._queue.put(event)

    def record(self, events: Sequence[UsageEvent]) -> None:
        """Deliver `events` now, in the caller's thread.

        Raises TrackingError when the store failed, EventConflict when it refused events whose
        ids belong to other invocations (nothing of the batch is stored then); other plugins'
        failures are logged and do not raise.
        """
        failures = self._dispatch(events, retry=False)
        if self.store in failures:
            error = failures[self.store]
            if isinstance(error, EventConflict):
                raise error
            raise TrackingError(
                f"could not store {len(events)} events: {describe(error)}"
            ) from error

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was delivered; False when `timeout` ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Deliver what is queued, then stop the background thread; False if it timed out."""
        with self._idle:
            self._closed = True
            worker = self._worker
        if worker is None:
            return True
        self._queue.put(_STOP)
        worker.join(timeout)
        return not worker.is_alive()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- delivery ------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name="claude-api-tracker", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                try:
                    self._dispatch(batch, retry=True)
                except Exception:  # never let the worker die: it would strand every later event
                    logger.exception("tracker failed to deliver %d events", len(batch))
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()

    def _dispatch(self, events: Sequence[UsageEvent], *, retry: bool) -> dict[str, BaseException]:
        failures: dict[str, BaseException] = {}
        for delivery in self._deliveries():
            if delivery.name == self.store:
                error, stored = self._store(delivery, events, retry=retry)
            else:
                error, stored = self._deliver(delivery, events), events
            if error is not None:
                failures[delivery.name] = error
                self.stats.plugin_failures[delivery.name] += 1
                if delivery.name == self.store and isinstance(error, EventConflict):
                    self.stats.refused += len(stored)
                    logger.warning("%s; nothing of the batch was stored", refusal(error, stored))
                elif delivery.name == self.store:
                    self.stats.dropped += len(stored)
                    logger.error(
                        "%d usage events not stored and dropped (tasks: %s): %s",
                        len(stored),
                        task_ids(stored),
                        describe(error),
                    )
            elif delivery.name == self.store:
                self.stats.stored += len(stored)
        return failures

    def _store(
        self, delivery: _Delivery, events: Sequence[UsageEvent], *, retry: bool
    ) -> tuple[BaseException | None, Sequence[UsageEvent]]:
        """Deliver `events` to the store. With `retry`, a failure is tried again after each
        delay, and the events the store refuses are left out (logged, counted, never tried
        again) and the others stored. Returns the last error (None once stored) and the
        events that are left."""
        delays = iter(self._retry_delays if retry else ())
        while True:
            error = self._deliver(delivery, events)
            if error is None or not retry:
                return error, events
            if isinstance(error, EventConflict):
                others = [event for event in events if event.event_id not in error.event_ids]
                if len(others) == len(events):  # names none of them: nothing to leave out
                    return error, events
                self.stats.refused += len(events) - len(others)
                logger.error("%s; storing the other %d", refusal(error, events), len(others))
                events = others
                if not events:
                    return None, events
                continue  # each pass leaves out at least one event, so this ends
            delay = next(delays, None)
            if delay is None:
                return error, events
            logger.warning(
                "storing %d events failed (%s); retrying in %.1fs",
                len(events),
                describe(error),
                delay,
            )
            time.sleep(delay)

    def _deliver(self, delivery: _Delivery, events: Sequence[UsageEvent]) -> BaseException | None:
        first_error: BaseException | None = None
        calls = (
            [(delivery.batch, events)]
            if delivery.batch is not None
            else [
                (delivery.started if event.status is Status.RUNNING else delivery.finished, event)
                for event in events
            ]
        )
        for hook, argument in calls:
            if hook is None:
                continue
            try:
                hook(argument)
            except Exception as error:
                first_error = first_error or error
        if first_error is not None and delivery.name != self.store:
            logger.error(
                "plugin %r failed and was skipped for this batch of %d events",
                delivery.name,
                len(events),
                exc_info=first_error,
            )
        return first_error

    def _deliveries(self) -> list[_Delivery]:
        # Each plugin is called on its own and its exceptions caught: pluggy's own hook call
        # stops at the first plugin that raises, and the contract says the others go on.
        hooks = self.manager.hook
        by_plugin: dict[str, dict[str, Callable[[Any], Any]]] = {}
        for hook_name in ("usage_batch", "usage_started", "usage_finished"):
            # pluggy calls the last registered first (respecting tryfirst/trylast); so do we.
            for impl in reversed(getattr(hooks, hook_name).get_hookimpls()):
                by_plugin.setdefault(impl.plugin_name, {})[hook_name] = _bind(impl)
        return [
            _Delivery(
                name=name,
                batch=functions.get("usage_batch"),
                started=functions.get("usage_started"),
                finished=functions.get("usage_finished"),
            )
            for name, functions in by_plugin.items()
        ]


def _bind(impl: pluggy.HookImpl) -> Callable[[Any], Any]:
    """Call an implementation with the hook's one argument, or none if it takes none."""
    function = impl.function
    if impl.argnames:
        return function
    return lambda _argument: function()


def describe(error: BaseException, limit: int = 300) -> str:
    """A one-line account of an error, without the statement and parameters SQLAlchemy adds."""
    cause = getattr(error, "orig", None) or error
    text = " ".join(str(cause).split()) or type(cause).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def refusal(error: EventConflict, events: Sequence[UsageEvent]) -> str:
    """A log line for events the store refused: how many, their ids and tasks, what differs."""
    refused = [event for event in events if event.event_id in error.event_ids]
    differing = sorted({field for conflict in error.conflicts for field in conflict.fields})
    ids = ", ".join(str(conflict.event_id) for conflict in error.conflicts[:5])
    more = f" and {len(error.conflicts) - 5} more" if len(error.conflicts) > 5 else ""
    return (
        f"refused {len(refused)} usage events (tasks: {task_ids(refused)}): their event ids "
        f"({ids}{more}) belong to invocations with a different {', '.join(differing)}"
    )


def task_ids(events: Sequence[UsageEvent], limit: int = 5) -> str:
    """The tasks `events` belong to, for a log line: the first few, and how many more."""
    tasks = sorted({event.task_id for event in events})
    shown = ", ".join(tasks[:limit])
    return f"{shown} and {len(tasks) - limit} more" if len(tasks) > limit else shown


def build_tracker(
    engine: Engine,
    *,
    load_entrypoints: bool = True,
    queue_size: int = 100_000,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
) -> Tracker:
    """A tracker delivering to the built-in recorder on `engine` and to third-party plugins."""
    from claude_api.plugins.manager import get_plugin_manager
    from claude_api.plugins.recorder import Recorder

    manager = get_plugin_manager(load_entrypoints=load_entrypoints)
    manager.register(Recorder(engine), name=RECORDER_NAME)
    return Tracker(manager, queue_size=queue_size, retry_delays=retry_delays)
