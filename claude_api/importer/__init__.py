"""Import Claude Code session transcripts as usage events: every session a task, its main
thread, subagents and skills invocations with their own tokens and cost.

discovery (find transcripts, group them by session) → lines and fields (read new lines, keep
what matters as records) → assembly and settlement (records into invocations, invocations into
events) with state (what the last import left) and tally (tokens and cost) → session (one
session, incrementally, under a lock) → driver (many sessions through the tracker, in bulk);
hook and hook_settings (Claude Code hooks).
"""

from claude_api.importer.driver import ImportOptions, ImportSummary, import_transcripts

__all__ = ["ImportOptions", "ImportSummary", "import_transcripts"]
