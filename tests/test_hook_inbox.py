"""The hook as Claude Code runs it now: the installed `claude-api-hook` keeps each payload in
the hook inbox and returns, and a detached worker records it. It records the same rows as the
hook recording in the foreground (same event ids and times), one worker at a time, loses
nothing when the worker is killed, counts and logs what does not fit, and still records when
the inbox cannot be written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from claude_api.hook_drain import arrival_time
from claude_api.importer.hook import handle_hook
from claude_api.models.db import make_engine, upgrade
from claude_api.tracking import Tracker, build_tracker
from tests.hook_helpers import (
    CLAUDE_API,
    CLAUDE_API_HOOK,
    data_directory,
    hook_log,
    inboxes,
    run_hook,
    session_held,
    the_inbox,
    wait_drained,
    wait_for_worker,
    worker_processes,
)
from tests.import_helpers import agents, one, skills
from tests.test_hook import AGENT_ID, CWD, SESSION, START, LiveSession
from tests.transcripts import HAIKU, Transcript, agent_call, skill_call, text_block, write_meta

OTHER_SESSION = "9b1c2d3e-4f50-4a6b-8c7d-8e9f0a1b2c3d"
HEAVY = (
    "sqlalchemy", "sqlmodel", "pydantic", "typer", "rich", "strawberry", "gql", "pluggy",
    "platformdirs", "typing", "psycopg", "sqlite3", "subprocess",
)  # fmt: skip


def hook_env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    """Claude Code's environment for the hook: nothing of the caller's claude-api settings, the
    data directory under `tmp_path`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDE")}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        CLAUDE_API_DATABASE_URL=url,
        **extra,
    )
    return env


def rows_of(engine: Engine) -> list[tuple[Any, ...]]:
    """Every stored invocation, everything but its row id, in event id order."""
    found = []
    for row in [*agents(engine), *skills(engine)]:
        values = row.model_dump(exclude={"id"})
        found.append(tuple(sorted((key, str(value)) for key, value in values.items())))
    return sorted(found, key=lambda row: dict(row)["event_id"])


class Reference:
    """The same payloads recorded in the foreground, by `handle_hook` itself, at the times the
    inbox kept for them: what the hook recorded before it had an inbox."""

    def __init__(self, tmp_path: Path) -> None:
        self.engine = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
        upgrade(self.engine)
        self.tracker: Tracker = build_tracker(self.engine, load_entrypoints=False, retry_delays=())

    def record(self, payload: dict[str, Any], arrived_ns: int) -> None:
        handle_hook(payload, engine=self.engine, tracker=self.tracker, now=arrival_time(arrived_ns))

    def close(self) -> None:
        self.tracker.close()
        self.engine.dispose()


def held_hook(live: LiveSession, payload: dict[str, Any], env: dict[str, str]) -> int:
    """Run the hook while its session is held, so that the worker waits; the arrival time the
    inbox kept for the payload."""
    with session_held(live.main_path):
        before = {entry.base for entry in _entries(env)}
        result = run_hook(payload, env)
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        [new] = [entry for entry in _entries(env) if entry.base not in before]
        assert json.loads(the_inbox(env).read(new)) == payload  # the bytes Claude Code sent
        return new.arrived_ns


def _entries(env: dict[str, str]) -> list[Any]:
    return [entry for inbox in inboxes(env) for entry in inbox.entries()]


@pytest.fixture
def reference(tmp_path: Path) -> Any:
    recorded = Reference(tmp_path)
    yield recorded
    recorded.close()


def test_the_installed_script_records_what_the_foreground_hook_recorded(
    engine: Engine, reference: Reference, tmp_path: Path
) -> None:
    """Claude Code's hook JSON (the formats reference, 4.2-4.3) through the real console
    script, step by step as a session writes its transcripts: after every call the rows equal
    those `handle_hook` records in the foreground at the payload's arrival time."""
    env = hook_env(tmp_path, engine.url.render_as_string(hide_password=False))
    live = LiveSession(tmp_path)
    main = live.main
    main.prompt("Review src/ and fix lint")
    call = agent_call("code-reviewer")
    main.respond(call, usage=(12, 140, 18000, 900))
    live.sub = sub = Transcript(
        live.ledger, session_id=SESSION, cwd=CWD, start=main.clock, owner="reviewer",
        agent_id=AGENT_ID,
    )  # fmt: skip
    sub.prompt("Review src/ for bugs")
    live.write()
    write_meta(live.agent_path, agentType="code-reviewer", toolUseId=call["id"], spawnDepth=1)

    def hook(event: str, **fields: Any) -> None:
        payload = live.payload(event, **fields)
        arrived_ns = held_hook(live, payload, env)
        wait_drained(env)
        reference.record(payload, arrived_ns)
        assert rows_of(engine) == rows_of(reference.engine), event
        assert _entries(env) == []

    hook("SubagentStart", agent_id=AGENT_ID, agent_type="code-reviewer")
    assert {row.status for row in agents(engine)} == {"running"}
    sub.respond(text_block("Found 2 issues"), model=HAIKU, usage=(4, 410, 24286, 700))
    live.write()
    hook(
        "SubagentStop", agent_id=AGENT_ID, agent_type="code-reviewer", stop_hook_active=False,
        agent_transcript_path=str(live.agent_path), last_assistant_message="Found 2 issues",
    )  # fmt: skip
    # PostToolUse before the transcript shows the result: its time is the hook's.
    response = {
        "status": "completed", "agentId": AGENT_ID, "agentType": "code-reviewer",
        "content": [{"type": "text", "text": "Found 2 issues"}], "totalDurationMs": 61500,
        "totalTokens": 25400, "totalToolUseCount": 6,
        "usage": {"input_tokens": 4, "output_tokens": 410},
    }  # fmt: skip
    hook(
        "PostToolUse", tool_name="Agent", tool_input=call["input"], tool_response=response,
        tool_use_id=call["id"], duration_ms=61620,
    )  # fmt: skip
    assert one(agents(engine), "code-reviewer").status == "completed"
    main.clock = sub.clock
    main.agent_result(call["id"], AGENT_ID, agent_type="code-reviewer", duration_ms=61500)
    lint = skill_call("lint-fix", args="src/")
    main.respond(lint, usage=(8, 30, 19100, 0))
    live.write()
    hook(
        "PostToolUse", tool_name="Skill", tool_input=lint["input"],
        tool_response={"success": True, "commandName": "lint-fix"}, tool_use_id=lint["id"],
    )  # fmt: skip
    main.respond(text_block("Fixed 2 lint issues."), usage=(9, 50, 19200, 0))
    main.turn_duration()
    live.write()
    hook("SessionEnd", reason="prompt_input_exit")
    assert {row.status for row in [*agents(engine), *skills(engine)]} == {"completed"}
    assert len(agents(engine)) == 2 and len(skills(engine)) == 1
    assert hook_log(env) == ""


def test_the_hook_returns_while_its_detached_worker_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    env = hook_env(tmp_path, url)
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    live.main.respond(text_block("hello"), usage=(1, 2, 3, 4))
    live.write()
    with session_held(live.main_path):  # the worker cannot finish while this is held
        result = run_hook(live.payload("SessionEnd", reason="other"), env)
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        inbox = the_inbox(env)
        pid = wait_for_worker(inbox)
        assert worker_processes(inbox) == [pid]
        assert os.getsid(pid) == pid != os.getsid(0)  # a session of its own
        for stream in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{stream}") == os.devnull
        assert len(inbox.entries()) == 1
    wait_drained(env)
    engine = make_engine(url)
    try:
        [row] = agents(engine)
        assert (row.agent_name, row.status) == ("main", "completed")
    finally:
        engine.dispose()
    assert inbox.entries() == [] and inbox.worker_pid() is None
    deadline = time.monotonic() + 30
    while worker_processes(inbox) and time.monotonic() < deadline:
        time.sleep(0.05)  # it closes the database and exits
    assert worker_processes(inbox) == []


def test_concurrent_hook_calls_start_one_worker_and_record_each_call_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    env = hook_env(tmp_path, url)
    live = LiveSession(tmp_path)
    live.main.prompt("go")
    calls = [agent_call("helper"), agent_call("fixer")]
    for call in calls:
        live.main.respond(call)
    live.write()
    payloads = [
        live.payload(
            "PostToolUse", tool_name="Agent", tool_input=call["input"], tool_use_id=call["id"],
            tool_response={"status": "completed", "agentId": f"a{n}", "totalDurationMs": 1000 * n},
        )
        for n, call in enumerate(calls, start=1)
    ]  # fmt: skip
    with session_held(live.main_path):
        hooks = [
            subprocess.Popen(
                [str(CLAUDE_API_HOOK)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env,
            )
            for _ in range(2)
            for _ in payloads
        ]  # fmt: skip
        for process, payload in zip(hooks, payloads * 2, strict=True):
            process.stdin.write(json.dumps(payload).encode())  # type: ignore[union-attr]
            process.stdin.close()  # type: ignore[union-attr]
        for process in hooks:
            assert process.wait(60) == 0
            assert process.stdout.read() == b""  # type: ignore[union-attr]
            process.stdout.close()  # type: ignore[union-attr]
            process.stderr.close()  # type: ignore[union-attr]
        inbox = the_inbox(env)
        assert len(inbox.entries()) == 4
        pid = wait_for_worker(inbox)
        assert worker_processes(inbox) == [pid]  # every hook has exited: no other will start
    wait_drained(env)
    engine = make_engine(url)
    try:
        rows = agents(engine)
        assert sorted(row.agent_name for row in rows) == ["fixer", "helper", "main"]
        assert one(rows, "helper").duration_seconds == 1.0
        assert one(rows, "fixer").duration_seconds == 2.0
    finally:
        engine.dispose()
    assert inbox.entries() == []


def test_a_worker_killed_while_recording_loses_nothing(
    reference: Reference, tmp_path: Path
) -> None:
    """The worker records one session's payload, then is killed (SIGKILL) while it waits for
    another session: the payloads it had not finished are recorded by the next worker."""
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    env = hook_env(tmp_path, url)
    first, second = LiveSession(tmp_path), LiveSession(tmp_path)
    second.main = Transcript(second.ledger, session_id=OTHER_SESSION, cwd=CWD, start=START)
    second.main_path = second.project / f"{OTHER_SESSION}.jsonl"
    for live in (first, second):
        live.main.prompt("go")
        live.main.respond(agent_call("helper"), usage=(5, 6, 7, 8))
        live.main.respond(text_block("done"), usage=(1, 2, 3, 4))
        live.main.turn_duration()
        live.write()

    def payload(live: LiveSession, **fields: Any) -> dict[str, Any]:
        session_id = SESSION if live is first else OTHER_SESSION
        return {**live.payload(**fields), "session_id": session_id}

    recorded = []
    with session_held(second.main_path):
        for live, fields in [
            (first, {"event": "SessionEnd", "reason": "other"}),
            (second, {"event": "SubagentStart", "agent_id": "b2", "agent_type": "helper"}),
            (second, {"event": "SessionEnd", "reason": "clear"}),
        ]:
            sent = payload(live, **fields)
            before = {entry.base for entry in _entries(env)}
            assert run_hook(sent, env).returncode == 0
            [new] = [entry for entry in _entries(env) if entry.base not in before]
            recorded.append((sent, new.arrived_ns))
        inbox = the_inbox(env)
        pid = wait_for_worker(inbox)
        deadline = time.monotonic() + 60
        while len(inbox.entries()) > 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the first session is recorded; the second waits for its lock
        assert len(inbox.entries()) == 2
        os.kill(pid, signal.SIGKILL)
        lock = inbox.lock(30)  # released by the kill
        assert lock is not None
        os.close(lock)
        assert worker_processes(inbox) == [] and len(inbox.entries()) == 2

    result = subprocess.run(
        [str(CLAUDE_API), "hook", "drain", "--json"], env=env, capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)["inboxes"]
    assert (report["recorded"], report["waiting"]) == (2, 0)
    for sent, arrived_ns in recorded:
        reference.record(sent, arrived_ns)
    engine = make_engine(url)
    try:
        assert rows_of(engine) == rows_of(reference.engine)
        assert len(agents(engine)) == 4  # main and helper of each session, once
    finally:
        engine.dispose()


def test_a_full_inbox_drops_counts_and_logs(tmp_path: Path) -> None:
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    live.write()
    payloads = [live.payload("SessionEnd", reason=reason) for reason in ("other", "clear", "x")]
    size = len(json.dumps(payloads[0]).encode())
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    env = hook_env(tmp_path, url, CLAUDE_API_HOOK_INBOX_MAX_BYTES=str(size + 10))
    with session_held(live.main_path):
        results = [run_hook(payload, env) for payload in payloads]
        assert [(result.returncode, result.stdout) for result in results] == [(0, b"")] * 3
        assert results[0].stderr == b""
        for result, count in zip(results[1:], (1, 2), strict=True):
            message = result.stderr.decode()
            assert f"hook SessionEnd of session {SESSION} dropped, the hook inbox is full" in (
                message
            )
            assert f"the bound is {size + 10:,}" in message
            assert f"{count} dropped so far" in message
            assert message.splitlines()[0].removeprefix("claude-api-hook: ") in hook_log(env)
        [kept] = the_inbox(env).entries()
        assert json.loads(the_inbox(env).read(kept)) == payloads[0]
    result = subprocess.run(
        [str(CLAUDE_API), "hook", "drain", "--json"], env=env, capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)["inboxes"]
    assert (report["recorded"], report["waiting"], report["dropped"]) == (0, 0, 2)
    # (the worker the first call started recorded it; drain found nothing left)


@pytest.mark.parametrize("blocked", ["the inbox", "the whole data directory"])
def test_an_inbox_that_cannot_be_written_records_in_the_foreground(
    blocked: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    env = hook_env(tmp_path, url)
    data = data_directory(env)
    if blocked == "the inbox":
        data.mkdir(parents=True)
        (data / "hook-inbox").write_text("a file where the inbox goes\n")
    else:
        Path(env["XDG_DATA_HOME"]).write_text("a file where the data directory goes\n")
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    live.main.respond(text_block("hello"), usage=(1, 2, 3, 4))
    live.write()
    result = run_hook(live.payload("SessionEnd", reason="other"), env)
    assert (result.returncode, result.stdout) == (0, b"")
    message = "the hook inbox cannot be written"
    assert message in result.stderr.decode()
    if blocked == "the inbox":
        assert message in hook_log(env)
    engine = make_engine(url)
    try:  # recorded before the hook returned
        [row] = agents(engine)
        assert (row.agent_name, row.status, row.output_tokens) == ("main", "completed", 2)
    finally:
        engine.dispose()


def test_each_configuration_records_into_its_own_database(tmp_path: Path) -> None:
    """Two sessions whose hooks have different databases, one data directory: each payload is
    recorded with its own hook's settings, by `hook drain` too when it runs with others."""
    urls = [f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db")]
    envs = [hook_env(tmp_path, url) for url in urls]
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    live.main.respond(text_block("hello"), usage=(1, 2, 3, 4))
    live.write()
    for env in envs:
        assert run_hook(live.payload("SessionEnd", reason="other"), env).returncode == 0
        wait_drained(env)
    assert len(inboxes(envs[0])) == 2
    for url in urls:
        engine = make_engine(url)
        try:
            assert [row.agent_name for row in agents(engine)] == ["main"]
        finally:
            engine.dispose()

    # A payload of `a` that no worker recorded (its lock was held while it came) ...
    Path(urls[0].removeprefix("sqlite:///")).unlink()  # what `a` holds now is recorded anew
    inbox_a = next(
        inbox
        for inbox in inboxes(envs[0])
        if inbox.saved_configuration()["environment"]["CLAUDE_API_DATABASE_URL"] == urls[0]
    )
    lock = inbox_a.try_lock()
    assert lock is not None
    try:
        assert run_hook(live.payload("SessionEnd", reason="clear"), envs[0]).returncode == 0
    finally:
        os.close(lock)
    assert len(inbox_a.entries()) == 1
    # ... is recorded into `a` by `hook drain` run with `b`'s settings.
    result = subprocess.run(
        [str(CLAUDE_API), "hook", "drain", "--json"],
        env=envs[1], capture_output=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    reports = {report["inbox"]: report for report in json.loads(result.stdout)["inboxes"]}
    assert reports[inbox_a.key]["recorded"] == 1
    assert inbox_a.entries() == []
    engine = make_engine(urls[0])
    try:
        assert [row.agent_name for row in agents(engine)] == ["main"]
    finally:
        engine.dispose()


def test_the_recording_path_loads_no_heavy_library(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    env = hook_env(tmp_path, url)
    live = LiveSession(tmp_path)
    live.main.prompt("hi")
    live.write()
    code = (
        "import sys\n"
        "from claude_api.hook_script import main\n"
        "main()\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(live.payload("SessionEnd", reason="other")).encode(),
        capture_output=True, env=env, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stderr, result.stdout.strip()) == (0, b"", b"[]")
    wait_drained(env)
    assert the_inbox(env).entries() == []
