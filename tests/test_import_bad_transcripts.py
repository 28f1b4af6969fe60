"""A transcript that cannot be read, or whose session id cannot name a file, is skipped and
named in the import's summary; every other session is imported."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from claude_api.client.app import app
from claude_api.importer.discovery import NO_SESSION_ID, UNREADABLE, UNSAFE_SESSION_ID
from claude_api.models.db import make_engine
from tests.import_helpers import agents, assert_spend, one
from tests.test_import_transcripts import CWD, PROJECT, START
from tests.transcripts import Ledger, Transcript, agent_call, stamp, text_block

GOOD = "0a1b2c3d-0000-4000-8000-0000000000e1"
UNSAFE_IDS = ["../../../../tmp/planted", "team/3f2a9c1e", ".."]


def _good_flat_session(project: Path, ledger: Ledger) -> None:
    main = Transcript(ledger, session_id=GOOD, cwd=CWD, start=START, version="2.0.76")
    main.prompt("hello")
    call = agent_call("researcher", tool="Task")
    main.respond(call, usage=(10, 50, 100, 0))
    sub = Transcript(
        ledger, session_id=GOOD, cwd=CWD, start=main.clock, owner="researcher",
        agent_id="5f6a7b8", version="2.0.76",
    )  # fmt: skip
    sub.prompt("Do the work well")
    sub.respond(text_block("found"), usage=(1, 2, 3, 4))
    main.clock = sub.clock
    main.agent_result(call["id"], "5f6a7b8", agent_type="researcher")
    main.write(project / f"{GOOD}.jsonl")
    sub.write(project / "agent-5f6a7b8.jsonl")


def _flat_agent_line(session_id: str) -> str:
    return orjson.dumps(
        {
            "parentUuid": None,
            "isSidechain": True,
            "agentId": "bad",
            "sessionId": session_id,
            "type": "user",
            "message": {"role": "user", "content": "hi"},
            "uuid": "u-1",
            "timestamp": stamp(START),
        }
    ).decode()  # compact, as Claude Code writes it


@pytest.fixture
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("CLAUDE_API_DATABASE_URL", database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_bad_transcripts_are_skipped_and_named(
    cli_database: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "config"
    project = root / "projects" / PROJECT
    ledger = Ledger()
    _good_flat_session(project, ledger)
    unsafe = {}
    for index, session_id in enumerate(UNSAFE_IDS):
        path = project / f"agent-bad{index}.jsonl"
        path.write_text(_flat_agent_line(session_id) + "\n")
        unsafe[str(path)] = session_id
    nameless = project / "agent-nameless.jsonl"
    nameless.write_text('{"type":"user","message":{"role":"user","content":"hi"}}\n')
    # A transcript whose read fails (an I/O error, as on a failing disk).
    unreadable = project / "agent-ioerror.jsonl"
    unreadable.symlink_to("/proc/self/mem")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(root))

    result = CliRunner().invoke(app, ["import", "--json", "--idle-minutes", "0"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    skipped = summary["transcripts_skipped"]
    assert set(skipped) == {*unsafe, str(nameless), str(unreadable)}
    for path, session_id in unsafe.items():
        assert skipped[path] == f"{UNSAFE_SESSION_ID}: {session_id!r}"
    assert skipped[str(nameless)] == NO_SESSION_ID
    assert skipped[str(unreadable)].startswith(f"{UNREADABLE}: ")
    assert summary["sessions"] == summary["sessions_imported"] == 1

    rows = agents(cli_database)
    assert sorted(row.agent_name for row in rows) == ["main", "researcher"]
    assert_spend(one(rows, "main"), ledger, "main")
    assert_spend(one(rows, "researcher"), ledger, "researcher")
    assert not list(tmp_path.glob("**/planted*")) and not Path("/tmp/planted.jsonl").exists()

    # The table names them too (paths may wrap: compare without the white space).
    table = CliRunner().invoke(app, ["import", "--idle-minutes", "0"])
    assert table.exit_code == 0, table.output
    compact = "".join(table.stdout.split())
    assert "skippedtranscripts5" in compact
    for path, reason in skipped.items():
        assert "".join(f"{path}: {reason}".split()) in compact
