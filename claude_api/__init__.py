"""claude-api analytics: record every agent and skill invocation and answer questions about them."""

from claude_api.plugins.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
__version__ = "0.1.0"
