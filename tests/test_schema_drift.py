"""`schema.graphql` at the repository root equals the schema the code builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from claude_api.graph.schema import export_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == export_sdl(), (
        "schema.graphql is out of date: run `claude-api schema > schema.graphql`"
    )


def test_schema_command_prints_the_sdl() -> None:
    command = [sys.executable, "-m", "claude_api.client", "schema"]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert printed == export_sdl()
