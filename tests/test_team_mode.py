"""Team mode with real processes on loopback: `claude-api serve` on PostgreSQL with API keys
required, and a developer's `claude-api login`, `import`, `hook` and `spool` configured to send
their events to it: every event arrives exactly once, nothing is lost while the server is down
(or is killed in the middle of spooling), and what the server refuses is set aside, counted."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session

from claude_api.models.db import make_engine, upgrade
from claude_api.models.keys import create_key, revoke_key
from claude_api.models.tables import AgentUsage
from claude_api.plugins.http_sink import HttpSink
from claude_api.sender import BULK_POLICY, Sender
from claude_api.spool import Spool
from claude_api.tracking import Tracker, build_tracker
from tests.factories import add_events, make_event
from tests.hook_helpers import wait_drained
from tests.import_helpers import TOKEN_FIELDS, agents, run_import, skills, truth_of
from tests.server_process import ServerProcess, free_port
from tests.test_import_corpus import Corpus, compose_corpus

REPO = Path(__file__).resolve().parents[1]
CLAUDE_API = Path(sys.executable).parent / "claude-api"


@dataclass
class Team:
    """The team's server, its database and a key that may write."""

    server: ServerProcess
    engine: Engine
    key: str

    def new_key(self, scope: str) -> str:
        with Session(self.engine) as session:
            key, _ = create_key(session, scope=scope)
            session.commit()
        return key


@pytest.fixture
def team(postgresql_url: str, tmp_path: Path) -> Iterator[Team]:
    engine = make_engine(postgresql_url)
    upgrade(engine)
    with Session(engine) as session:
        key, _ = create_key(session, scope="write", name="laptop")
        session.commit()
    server = ServerProcess(
        postgresql_url,
        tmp_path / "server.log",
        CLAUDE_API_AUTH="required",
        CLAUDE_API_RETENTION_DAYS="0",  # the corpus is months old: keep it
    )
    try:
        server.start()
        yield Team(server, engine, key)
    finally:
        server.stop()
        engine.dispose()


def developer(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A developer's environment: no CLAUDE_API_* of the caller, their own home, data and
    config directories under `tmp_path`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE")}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        CLAUDE_CONFIG_DIR=str(tmp_path / "home" / ".claude"),
        **extra,
    )
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLAUDE_API), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def hook(env: dict[str, str], payload: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`claude-api hook --remote` as Claude Code runs it, then the wait for the worker it
    starts to record the payload."""
    result = subprocess.run(
        [str(CLAUDE_API), "hook", "--remote"],
        input=json.dumps(payload),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    wait_drained(env)
    return result


def spool_status(env: dict[str, str]) -> dict[str, Any]:
    result = cli(env, "spool", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def rows_of(engine: Engine) -> dict[uuid.UUID, tuple[Any, ...]]:
    """Every stored invocation by event id: what it is and what it spent."""
    rows = {}
    for row in [*agents(engine), *skills(engine)]:
        name = row.agent_name if isinstance(row, AgentUsage) else row.skill_name
        rows[row.event_id] = (
            name,
            row.task_id,
            row.status,
            row.cost_usd,
            *(getattr(row, f) for f in TOKEN_FIELDS),
        )
    return rows


def reference(tmp_path: Path, root: Path) -> dict[uuid.UUID, tuple[Any, ...]]:
    """The same transcripts imported straight into a database of their own."""
    engine = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    upgrade(engine)
    tracker: Tracker = build_tracker(engine, load_entrypoints=False, retry_delays=())
    try:
        run_import(engine, tracker, root, idle=timedelta(minutes=30))
    finally:
        tracker.close()
    try:
        return rows_of(engine)
    finally:
        engine.dispose()


def session_end(root: Path, main: Path) -> dict[str, Any]:
    return {
        "session_id": main.stem,
        "transcript_path": str(main),
        "cwd": "/home/dev/corpus",
        "hook_event_name": "SessionEnd",
        "reason": "exit",
    }


def corpus_in(root: Path, *, seed: int, sessions: int) -> Corpus:
    corpus = compose_corpus(root, seed=seed, sessions=sessions)
    corpus.write()
    return corpus


def main_transcripts(root: Path) -> list[Path]:
    return sorted(path for path in root.glob("*/*.jsonl") if not path.name.startswith("agent-"))


# ---- login -------------------------------------------------------------------------------------


def test_login_checks_the_key_and_keeps_it_private(team: Team, tmp_path: Path) -> None:
    env = developer(tmp_path)
    login_file = tmp_path / "config" / "claude-api" / "login.json"

    unknown = cli(env, "login", team.server.url, "--key", "cc_000000000000_nope")
    assert unknown.returncode == 1 and "HTTP 401" in unknown.stderr, unknown.stderr
    reader = cli(env, "login", team.server.url, "--key", team.new_key("read"))
    assert reader.returncode == 1 and "may not write" in reader.stderr, reader.stderr
    assert not login_file.exists()  # nothing kept after a refusal

    done = cli(env, "login", team.server.url + "/", "--key", team.key)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(login_file.stat().st_mode) == 0o600
    assert json.loads(login_file.read_text()) == {"url": team.server.url, "api_key": team.key}
    with Session(team.engine) as session:  # the check stored nothing
        assert session.execute(sa.select(sa.func.count()).select_from(AgentUsage)).scalar() == 0

    # Logged in, `hook install` installs the remote form.
    installed = cli(env, "hook", "install", "--json")
    assert installed.returncode == 0, installed.stderr
    settings = json.loads((tmp_path / "home" / ".claude" / "settings.json").read_text())
    commands = [
        handler["command"]
        for event, groups in settings["hooks"].items()
        if event != "PreToolUse"
        for group in groups
        for handler in group["hooks"]
    ]
    assert commands and all(command.endswith("claude-api-hook --remote") for command in commands)


# ---- exactly once ------------------------------------------------------------------------------


def test_import_and_hook_deliver_a_corpus_exactly_once(team: Team, tmp_path: Path) -> None:
    root = tmp_path / "projects"
    corpus = corpus_in(root, seed=16, sessions=30)
    truth = truth_of(root)
    env = developer(tmp_path)
    assert cli(env, "login", team.server.url, "--key", team.key).returncode == 0

    imported = cli(env, "import", str(root), "--json")
    assert imported.returncode == 0, imported.stderr
    summary = json.loads(imported.stdout)
    assert summary["events_not_stored"] == 0 and summary["sessions_failed"] == 0

    stored = rows_of(team.engine)
    made = Counter((row[0], row[2]) for row in stored.values())
    assert made == Counter({(name, status): n for (_, name, status), n in corpus.calls.items()})
    rows = agents(team.engine) + skills(team.engine)
    for name in TOKEN_FIELDS:
        assert sum(getattr(row, name) or 0 for row in rows) == truth.tokens[name], name
    assert sum(row.cost_usd or 0.0 for row in rows) == pytest.approx(truth.cost, rel=1e-9)
    assert stored == reference(tmp_path, root)  # the same rows as a direct import, no more
    # Nothing stayed behind, the state is local, the server's database is not opened.
    assert spool_status(env)["events"] == 0
    assert (tmp_path / "data" / "claude-api" / "state.db").exists()
    assert not (tmp_path / "data" / "claude-api" / "analytics.db").exists()

    again = cli(env, "import", str(root), "--json")
    assert json.loads(again.stdout)["events"] == 0
    for main in main_transcripts(root)[:5]:
        result = hook(env, session_end(root, main))
        assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert rows_of(team.engine) == stored


# ---- offline -----------------------------------------------------------------------------------


def test_a_stopped_server_spools_and_the_next_hook_call_delivers(
    team: Team, tmp_path: Path
) -> None:
    root = tmp_path / "projects"
    corpus_in(root, seed=3, sessions=8)
    mains = main_transcripts(root)
    env = developer(tmp_path, CLAUDE_API_URL=team.server.url, CLAUDE_API_KEY=team.key)

    team.server.stop()
    for main in mains[:-1]:
        result = hook(env, session_end(root, main))
        assert (result.returncode, result.stdout) == (0, ""), result.stderr
    waiting = spool_status(env)
    assert waiting["events"] > 0 and waiting["dead_events"] == 0
    assert rows_of(team.engine) == {}

    team.server.start()
    result = hook(env, session_end(root, mains[-1]))  # the spool goes first
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert spool_status(env)["events"] == 0
    assert rows_of(team.engine) == reference(tmp_path, root)  # nothing lost, nothing doubled


PRODUCER = """
import json, sys
from claude_api.config import Settings
from claude_api.producers import open_producer
from tests.factories import make_event
producer = open_producer(Settings())
for batch in range(10_000):
    events = [make_event(task_id=f"task-{batch}") for _ in range(20)]
    producer.tracker.record(events)  # returns once the events are delivered or spooled
    print(json.dumps([str(event.event_id) for event in events]), flush=True)
"""


def test_a_producer_killed_while_spooling_loses_nothing_it_acknowledged(
    postgresql_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(postgresql_url, tmp_path / "server.log")  # not started yet
    env = developer(tmp_path, CLAUDE_API_URL=server.url)
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER],
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    acknowledged: list[str] = []
    try:
        assert producer.stdout is not None
        for line in producer.stdout:
            acknowledged += json.loads(line)
            if len(acknowledged) >= 2_000:
                break
        producer.send_signal(signal.SIGKILL)  # in the middle of the next append, most likely
        for line in producer.stdout:  # what it printed before it died was acknowledged too
            acknowledged += json.loads(line)
    finally:
        producer.kill()
        producer.wait(10)
    assert len(acknowledged) >= 2_000

    server.start()
    try:
        flushed = cli(env, "spool", "flush", "--json")
        assert flushed.returncode == 0, flushed.stderr
        engine = make_engine(postgresql_url)
        with engine.connect() as connection:
            ids = {str(row[0]) for row in connection.execute(sa.select(AgentUsage.event_id))}
        engine.dispose()
    finally:
        server.stop()
    assert set(acknowledged) <= ids
    assert len(ids) % 20 == 0  # whole records only: a torn one was never acknowledged
    assert spool_status(env)["events"] == 0


# ---- refusals ----------------------------------------------------------------------------------


def test_a_conflicting_event_is_set_aside_and_the_rest_delivered(
    team: Team, tmp_path: Path
) -> None:
    taken = make_event(name="code-reviewer")
    add_events(team.engine, taken)
    before, after = make_event(name="planner"), make_event(name="debugger")
    clash = make_event(event_id=taken.event_id, name="someone-else")
    spool = Spool(tmp_path / "spool")
    sink = HttpSink(Sender(team.server.url, team.key, BULK_POLICY), spool)

    sink.usage_batch([before, clash, after])

    stored = rows_of(team.engine)
    assert {row[0] for row in stored.values()} == {"code-reviewer", "planner", "debugger"}
    assert stored[taken.event_id][0] == "code-reviewer"  # the recorded invocation is untouched
    status = spool.status()
    assert (status.events, status.dead_events) == (0, 1)
    dead = json.loads((tmp_path / "spool" / "dead-letters.jsonl").read_text())
    assert dead["status"] == 409 and dead["events"][0]["event_id"] == str(taken.event_id)


def test_a_revoked_key_sets_the_batch_aside_without_retrying(team: Team, tmp_path: Path) -> None:
    key = team.new_key("write")
    with Session(team.engine) as session:
        revoke_key(session, key)
        session.commit()
    spool = Spool(tmp_path / "spool")
    sink = HttpSink(Sender(team.server.url, key, BULK_POLICY), spool)
    started = time.perf_counter()
    sink.usage_batch([make_event(), make_event()])
    assert time.perf_counter() - started < BULK_POLICY.budget / 4  # no backoff for a 401
    status = spool.status()
    assert (status.events, status.dead_events) == (0, 2)
    assert rows_of(team.engine) == {}


# ---- a slow server -----------------------------------------------------------------------------


class SilentServer:
    """A port that accepts connections and never answers (a server stuck on something)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.socket = socket.create_server(("127.0.0.1", self.port))
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


def test_a_slow_server_is_waited_for_once_then_held_off(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    corpus_in(root, seed=5, sessions=2)
    mains = main_transcripts(root)
    silent = SilentServer()
    try:
        env = developer(tmp_path, CLAUDE_API_URL=f"http://127.0.0.1:{silent.port}")
        result = hook(env, session_end(root, mains[0]))
        assert (result.returncode, result.stdout) == (0, ""), result.stderr
        assert len(silent.accepted) == 1  # one request, not retried: it timed out
        status = spool_status(env)
        assert status["events"] > 0 and "timed out" in status["held_because"]

        result = hook(env, session_end(root, mains[1]))
        assert result.returncode == 0
        assert len(silent.accepted) == 1  # held off: spooled without asking again
        assert spool_status(env)["events"] > status["events"]
    finally:
        silent.close()


# ---- the executor ------------------------------------------------------------------------------


def test_run_sends_its_events_and_keeps_its_session_registry_local(
    team: Team, tmp_path: Path
) -> None:
    from tests.fake_claude import FakeClaude
    from tests.fake_claude import scenarios as sc

    claude = str(FakeClaude(tmp_path / "fake-claude").install(sc.success()))
    task_id = "5b7d4e21-3f2a-4c1e-9a0c-1d2e3f4a5b6c"
    env = developer(
        tmp_path,
        CLAUDE_API_URL=team.server.url,
        CLAUDE_API_KEY=team.key,
        CLAUDE_API_CLAUDE_BIN=claude,
    )
    done = cli(env, "run", "Fix lint", "--task-id", task_id, "--project", "proj-9", timeout=60)
    assert done.returncode == 0, done.stderr

    alone = make_engine(f"sqlite:///{tmp_path / 'alone.db'}")
    try:
        local_env = developer(
            tmp_path / "alone",
            CLAUDE_API_DATABASE_URL=str(alone.url),
            CLAUDE_API_CLAUDE_BIN=claude,
        )
        other = "6c8e5f32-4a3b-4d2f-8b1d-2e3f4a5b6c7d"
        same = cli(local_env, "run", "Fix lint", "--task-id", other, "--project", "proj-9")
        assert same.returncode == 0, same.stderr

        def calls(engine: Engine) -> Counter[tuple[Any, ...]]:
            return Counter((row[0], row[2], row[3]) for row in rows_of(engine).values())

        assert calls(team.engine) == calls(alone) != Counter()
    finally:
        alone.dispose()
    state = make_engine(f"sqlite:///{tmp_path / 'data' / 'claude-api' / 'state.db'}")
    try:
        with state.connect() as connection:
            sessions = connection.execute(sa.text("SELECT session_id FROM task_sessions"))
            assert [row[0] for row in sessions] == [task_id]
    finally:
        state.dispose()
    with team.engine.connect() as connection:  # the server's registry never saw it
        assert connection.execute(sa.text("SELECT count(*) FROM task_sessions")).scalar() == 0


def test_a_busy_server_is_waited_for_as_it_asks_or_held_off(
    postgresql_url: str, tmp_path: Path
) -> None:
    from claude_api.sender import HOOK_POLICY

    engine = make_engine(postgresql_url)
    upgrade(engine)
    with Session(engine) as session:
        key, _ = create_key(session, scope="write")
        session.commit()
    server = ServerProcess(postgresql_url, tmp_path / "server.log", CLAUDE_API_AUTH="required",
                           CLAUDE_API_RATE_LIMIT="2/minute")  # fmt: skip
    try:
        server.start()
        spool = Spool(tmp_path / "spool")
        sink = HttpSink(Sender(server.url, key, HOOK_POLICY), spool)
        sent = [make_event(), make_event()]
        sink.usage_batch(sent[:1])
        sink.usage_batch(sent[1:])  # the two requests a minute allows
        late = make_event()
        started = time.time()
        sink.usage_batch([late])  # 429, Retry-After about 30 s: more than the hook may wait
        status = spool.status()
        assert status.events == 1 and "HTTP 429" in (status.held_because or "")
        assert status.held_until is not None
        held = status.held_until.timestamp() - started
        assert 20 < held < 40  # as long as the server asked (a token every 30 s)
        assert set(rows_of(engine)) == {event.event_id for event in sent}
        sink.close()
    finally:
        server.stop()
        engine.dispose()
