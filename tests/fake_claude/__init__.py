"""A fake `claude` executable for the executor's tests, and the scripted runs it replays."""

from __future__ import annotations

import json
import shlex
import stat
import sys
from pathlib import Path
from typing import Any

from tests.fake_claude.claude import project_dir_name
from tests.fake_claude.scenarios import Script

FAKE_CLAUDE = Path(__file__).with_name("claude.py")


class FakeClaude:
    """Installs a `claude` in `directory` that replays one script with this interpreter.

    The installed file is a shell wrapper, so the fake runs with the test's Python (a fresh venv
    in CI) whatever `python3` is on the PATH; it execs, keeping the pid the executor started.
    Transcripts go under `$CLAUDE_CONFIG_DIR`, which defaults to `config_dir` here (never the
    user's own `~/.claude`).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "claude"
        self.script_path = directory / "script.json"
        self.record_path = directory / "calls.jsonl"
        self.config_dir = directory / "claude-config"

    @property
    def projects(self) -> Path:
        """Where the fake writes transcripts unless CLAUDE_CONFIG_DIR says otherwise."""
        return self.config_dir / "projects"

    def transcript_path(self, session_id: str, cwd: str | Path) -> Path:
        """The main transcript of `session_id` run in `cwd`, as the fake (and Claude Code)
        names it."""
        return self.projects / project_dir_name(str(cwd)) / f"{session_id}.jsonl"

    def install(self, script: Script) -> Path:
        """Make the fake replay `script`; returns the executable's path."""
        self.script_path.write_text(json.dumps(script.to_json()), encoding="utf-8")
        self.path.write_text(
            "#!/bin/sh\n"
            f"export FAKE_CLAUDE_SCRIPT={shlex.quote(str(self.script_path))}\n"
            f"export FAKE_CLAUDE_RECORD={shlex.quote(str(self.record_path))}\n"
            'if [ -z "${CLAUDE_CONFIG_DIR:-}" ]; then '
            f"CLAUDE_CONFIG_DIR={shlex.quote(str(self.config_dir))}; fi\n"
            "export CLAUDE_CONFIG_DIR\n"
            f'exec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE_CLAUDE))} "$@"\n',
            encoding="utf-8",
        )
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return self.path

    def calls(self) -> list[dict[str, Any]]:
        """How the fake was called: argv, parsed prompt and agent, pid and process group."""
        if not self.record_path.exists():
            return []
        lines = self.record_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]
