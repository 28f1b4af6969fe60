"""Guardrails: budgets, enforced when Claude Code launches a subagent or skill and when the
executor starts a task, and alerts on failure rate, cost and latency.

`periods`, `spend`, `verdicts`, `dbapi` and `pretool` import the standard library only: the
PreToolUse hook (`pretool`) runs them before every subagent or skill starts.
"""
