"""The plugin manager: the usage hookspecs and the plugins of the `claude_api` entry points."""

from __future__ import annotations

import pluggy

from claude_api.plugins import hookspecs

ENTRY_POINT_GROUP = "claude_api"


def get_plugin_manager(*, load_entrypoints: bool = True) -> pluggy.PluginManager:
    """A new plugin manager with the hookspecs and, unless told not to, third-party plugins.

    The built-in recorder needs a database engine, so it is registered by whoever wires the
    tracker (`claude_api.tracking.build_tracker`), not here.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if load_entrypoints:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager
