"""The agentic executor: runs tasks with Claude Code and tracks every agent and skill they use."""

from claude_api.executor.claude_code import DEFAULT_AGENT, TaskResult, claude_command, run_task

__all__ = ["DEFAULT_AGENT", "TaskResult", "claude_command", "run_task"]
