"""claude-api analytics: record every agent and skill invocation and answer questions about them."""

from __future__ import annotations

TYPE_CHECKING = False  # importing typing would cost the hook's start-up time
if TYPE_CHECKING:
    from typing import Any


__all__ = ["__version__", "hookimpl"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `hookimpl` is loaded on first use: importing any module of the package would otherwise
    # load pluggy and pydantic, which the PreToolUse hook (`claude-api-hook`) must not wait for.
    if name == "hookimpl":
        from claude_api.plugins.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
