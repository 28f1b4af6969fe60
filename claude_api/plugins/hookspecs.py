"""The usage contract: the hooks by which runners emit, and plugins receive, usage events.

A plugin is any object or module with functions marked `@claude_api.hookimpl` and named after
these specs. Third-party plugins register under the entry-point group `claude_api`:

    [project.entry-points.claude_api]
    my_sink = "my_package.sink"

The host delivers each event to every plugin. A plugin that raises is logged and skipped: the
other plugins and the runner go on. Events arrive on the tracker's background thread, never on
the runner's, so a slow plugin delays other plugins, not the work being tracked.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from claude_api.events import UsageEvent

PROJECT_NAME = "claude_api"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def usage_started(event: UsageEvent) -> None:
    """An agent or skill invocation started: `event.status` is `running`.

    The same event may arrive twice (runners retry); `event.event_id` identifies it.
    The return value is ignored.
    """


@hookspec
def usage_finished(event: UsageEvent) -> None:
    """An invocation finished: `event.status` is `completed` or `failed`.

    A finish carries every field of the invocation (its start time included), so it may arrive
    without its start having been seen, or twice. The return value is ignored.
    """


@hookspec
def usage_batch(events: Sequence[UsageEvent]) -> None:
    """Receive events in bulk, in the order they were emitted, instead of one at a time.

    A plugin that implements this hook gets every event through it and is not called with
    `usage_started` or `usage_finished`. Starts and finishes are mixed; a batch may hold the
    start and the finish of one invocation. Implement it to write in bulk; raise to report that
    the whole batch failed.
    """
