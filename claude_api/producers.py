"""Where a producer (the hook, the transcript import, the executor) sends its events, and where
it keeps its own state.

Alone, a producer opens the usage database itself and the recorder writes its events there.
In team mode (a server URL configured: CLAUDE_API_URL, or `claude-api login`), the HTTP sink
takes the recorder's place and sends them to the server, spooling what cannot go now; the
producer's own state (import offsets, what the hook saw, the sessions the executor ran) stays
on this machine, in a SQLite file of the data directory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from platformdirs import user_data_dir
from sqlalchemy import Engine

from claude_api.config import APP_NAME, Settings
from claude_api.models.db import make_engine, upgrade
from claude_api.plugins.manager import get_plugin_manager
from claude_api.plugins.recorder import RECORDER_NAME, Recorder
from claude_api.tracking import DEFAULT_RETRY_DELAYS, Tracker

if TYPE_CHECKING:  # the HTTP side (httpx, tenacity) is imported only in team mode
    from claude_api.plugins.http_sink import HttpSink
    from claude_api.sender import DeliveryPolicy
    from claude_api.spool import Spool

logger = logging.getLogger(__name__)

STATE_DATABASE = "state.db"
SPOOL_DIRECTORY = "spool"


def data_directory() -> Path:
    """The user's data directory of claude-api (the default database, the hook's log)."""
    return Path(user_data_dir(APP_NAME))


def state_database_url() -> str:
    """The SQLite file where a producer in team mode keeps its own state."""
    return f"sqlite:///{data_directory() / STATE_DATABASE}"


def spool_of(settings: Settings) -> Spool:
    """The spool of this machine's producers."""
    from claude_api.spool import Spool

    return Spool(data_directory() / SPOOL_DIRECTORY, max_bytes=settings.spool_max_bytes)


def sink_of(settings: Settings, policy: DeliveryPolicy | None = None) -> HttpSink:
    """An HTTP sink to the configured server (one that only spools when none is configured);
    `policy` defaults to the bulk policy (an import, a run)."""
    from claude_api.plugins.http_sink import HttpSink
    from claude_api.sender import BULK_POLICY, Sender

    policy = policy or BULK_POLICY
    sender = None
    if settings.url:
        key = settings.api_key.get_secret_value() if settings.api_key else None
        sender = Sender(settings.url, key, policy)
    return HttpSink(sender, spool_of(settings), flush_seconds=policy.flush_seconds)


@dataclass
class Producer:
    """A producer's tracker and its state database (import offsets, hook state, the task
    sessions registry); `sink` is the HTTP sink in team mode, else None."""

    tracker: Tracker
    engine: Engine
    sink: HttpSink | None = None

    def deliver_spool(self) -> None:
        """In team mode, deliver what waits in the spool (within the policy's time), before
        this producer's own events."""
        if self.sink is not None and self.sink.spool.pending():
            self.sink.flush(seconds=self.sink.flush_seconds)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Deliver or spool what is queued, then close; False when that timed out. In team mode
        logs what waits in the spool."""
        closed = self.tracker.close(timeout)
        if self.sink is not None:
            self.sink.close()
            stats = self.sink.stats
            if stats.spooled:
                logger.warning(
                    "%d usage events are spooled in %s (%s); the next hook call, import or "
                    "`claude-api spool flush` delivers them",
                    stats.spooled,
                    self.sink.spool.directory,
                    stats.last_problem,
                )
        self.engine.dispose()
        return closed

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_producer(
    settings: Settings,
    *,
    remote: bool | None = None,
    policy: DeliveryPolicy | None = None,
    queue_size: int | None = None,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    engine_options: dict[str, Any] | None = None,
) -> Producer:
    """A tracker for a producer, with its state database opened and migrated.

    `remote` None: team mode when a server URL is configured; True: team mode in any case
    (events are spooled until a server is configured); False: the database. Raises what
    opening the database raises.
    """
    if remote is None:
        remote = bool(settings.url)
    queue_size = queue_size or settings.tracking_queue_size
    url = state_database_url() if remote else settings.database_url
    engine = make_engine(url, **({} if remote else engine_options or {}))
    try:
        upgrade(engine)
        manager = _plugin_manager()
        sink = None
        if remote:
            from claude_api.plugins.http_sink import SINK_NAME

            sink = sink_of(settings, policy)
            manager.register(sink, name=SINK_NAME)
            store = SINK_NAME
        else:
            manager.register(Recorder(engine), name=RECORDER_NAME)
            store = RECORDER_NAME
    except BaseException:
        engine.dispose()
        raise
    tracker = Tracker(manager, store=store, queue_size=queue_size, retry_delays=retry_delays)
    return Producer(tracker=tracker, engine=engine, sink=sink)


def _plugin_manager() -> pluggy.PluginManager:
    try:
        return get_plugin_manager()
    except Exception:
        logger.exception("third-party usage plugins failed to load; going on without them")
        return get_plugin_manager(load_entrypoints=False)
