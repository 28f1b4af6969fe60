"""The host side of the usage contract: emit events to every plugin, isolated and off-thread.

`Tracker.emit` is what runners call: it queues the event and returns at once, so tracking
never slows the work it observes. A background thread delivers queued events in batches.
`Tracker.record` delivers synchronously and raises when the store failed, for callers that
must acknowledge a write (HTTP ingest).
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

from claude_api.errors import TrackingError
from claude_api.models.events import Status, UsageEvent
from claude_api.plugins.recorder import RECORDER_NAME

logger = logging.getLogger(__name__)

_STOP = object()
DEFAULT_RETRY_DELAYS = (0.1, 0.5, 2.0)


@dataclass
class TrackerStats:
    """What the tracker did: events emitted, delivered to the store, dropped, plugin failures."""

    emitted: int = 0
    stored: int = 0
    dropped: int = 0
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

        Raises TrackingError when the store failed (nothing of the batch is stored then);
        other plugins' failures are logged and do not raise.
        """
        failures = self._dispatch(events, retry=False)
        if self.store in failures:
            error = failures[self.store]
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
            error = self._deliver(delivery, events)
            if error is not None and retry and delivery.name == self.store:
                error = self._retry(delivery, events, error)
            if error is not None:
                failures[delivery.name] = error
                self.stats.plugin_failures[delivery.name] += 1
                if delivery.name == self.store:
                    self.stats.dropped += len(events)
                    logger.error(
                        "%d usage events not stored and dropped (tasks: %s): %s",
                        len(events),
                        task_ids(events),
                        describe(error),
                    )
            elif delivery.name == self.store:
                self.stats.stored += len(events)
        return failures

    def _retry(
        self, delivery: _Delivery, events: Sequence[UsageEvent], error: BaseException
    ) -> BaseException | None:
        for delay in self._retry_delays:
            logger.warning(
                "storing %d events failed (%s); retrying in %.1fs",
                len(events),
                describe(error),
                delay,
            )
            time.sleep(delay)
            error = self._deliver(delivery, events)
            if error is None:
                return None
        return error

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
