"""Team mode: the time the hook adds per call (server up, down, slow; against the hook writing a
local database), and remote ingest through one and two server replicas against the recorder
writing the same PostgreSQL database directly.

    python -m bench.bench_team --database-url postgresql+psycopg://.../db [--events 40000]

Servers are real processes on loopback: `claude-api serve` (API keys required) on a fresh schema
of the given PostgreSQL database. A hook call is timed past its process start-up (measured
apart, the same in every case): what `claude-api hook` does for a SessionEnd payload of a
composed session, with its state and spool in a directory of its own per case. Producers send
batches through the HTTP sink. The slow server accepts connections and never answers.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlmodel import Session

from bench.bench_tracking import make_finished_events
from claude_api.config import Settings
from claude_api.importer.hook import handle_hook
from claude_api.models.db import make_engine, upgrade
from claude_api.models.keys import create_key
from claude_api.plugins.http_sink import HttpSink
from claude_api.plugins.recorder import Recorder
from claude_api.producers import open_producer
from claude_api.sender import BULK_POLICY, HOOK_POLICY, Sender
from claude_api.spool import Spool
from tests.server_process import ServerProcess, free_port
from tests.transcripts import Ledger, Transcript, agent_call, skill_call, text_block

CLAUDE_API = Path(sys.executable).parent / "claude-api"
HOOK_CALLS = 15


@contextmanager
def schema(base_url: str) -> Iterator[str]:
    """A URL of `base_url` whose search path is a new schema, dropped afterwards."""
    name = f"bench_team_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def write_key(url: str) -> str:
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        key, _ = create_key(session, scope="write")
        session.commit()
    engine.dispose()
    return key


# ---- the hook ----------------------------------------------------------------------------------


def compose_session(root: Path, index: int) -> dict[str, str]:
    """A finished session with two subagents and a skill; its SessionEnd payload."""
    session_id = str(uuid.uuid4())
    start = datetime(2026, 11, 2, 9, tzinfo=UTC) + timedelta(hours=index)
    main = Transcript(Ledger(), session_id=session_id, cwd="/home/dev/app", start=start)
    main.prompt("Review and fix")
    project = root / "-home-dev-app"
    for number in range(2):
        call = agent_call("code-reviewer")
        main.respond(call)
        agent_id = f"{index:08x}{number:09x}"
        sub = Transcript(
            main.ledger, session_id=session_id, cwd=main.cwd, start=main.clock,
            owner=agent_id, agent_id=agent_id,
        )  # fmt: skip
        sub.prompt("Do the work well")
        sub.respond(text_block("Done."))
        sub.write(project / session_id / "subagents" / f"agent-{agent_id}.jsonl")
        main.clock = sub.clock
        main.agent_result(call["id"], agent_id, agent_type="code-reviewer")
    skill = skill_call("lint-fix")
    main.respond(skill)
    main.skill_result(skill["id"], "lint-fix")
    main.respond(text_block("All done."))
    path = main.write(project / f"{session_id}.jsonl")
    return {
        "session_id": session_id,
        "transcript_path": str(path),
        "cwd": main.cwd,
        "hook_event_name": "SessionEnd",
        "reason": "exit",
    }


def time_hook(data: Path, payload: dict[str, str], settings: Settings, remote: bool) -> float:
    """Seconds one hook call spends past its start-up, as `claude-api hook` spends them: open
    the state (or the database), deliver the spool, import the session, send or spool, close."""
    os.environ["XDG_DATA_HOME"] = str(data)  # where the state file and the spool live
    started = time.perf_counter()
    producer = open_producer(settings, remote=remote, policy=HOOK_POLICY, retry_delays=())
    try:
        producer.deliver_spool()
        handle_hook(payload, engine=producer.engine, tracker=producer.tracker)
    finally:
        producer.close(5.0)
    return time.perf_counter() - started


def hook_times(
    data: Path, root: Path, start: int, settings: Settings, *, remote: bool
) -> list[float]:
    payloads = [compose_session(root, start + index) for index in range(HOOK_CALLS)]
    return [time_hook(data, payload, settings, remote) for payload in payloads]


def process_start() -> float:
    """The median wall time of `claude-api hook` as a process given no input (it starts, finds
    nothing to do, exits): what every hook call costs before its work."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([str(CLAUDE_API), "hook"], input="", capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class SilentServer:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.socket = socket.create_server(("127.0.0.1", self.port))
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.socket.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.socket.close()
        for connection in self.held:
            connection.close()


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:6.0f} ms, p95 {p95 * 1000:6.0f} ms"


def bench_hook(url: str, work: Path) -> None:
    key = write_key(url)
    root = work / "projects"
    print(f"\nhook: {HOOK_CALLS} SessionEnd calls per case (a session of 2 subagents, 1 skill)")
    print(f"  process start-up alone         {process_start() * 1000:6.0f} ms", flush=True)
    local_db = Settings(database_url=f"sqlite:///{work / 'local.db'}")
    local = hook_times(work / "local", root, 0, local_db, remote=False)
    print(f"  local SQLite (no server)      {summary(local)}", flush=True)
    with serving(url, work / "up.log") as server:
        up_settings = Settings(url=server.url, api_key=key)
        up = hook_times(work / "up", root, 100, up_settings, remote=True)
    print(f"  remote, server up             {summary(up)}   ({_added(up, local)})", flush=True)
    down_settings = Settings(url=f"http://127.0.0.1:{free_port()}")
    down = hook_times(work / "down", root, 200, down_settings, remote=True)
    print(f"  remote, server down (spooled) {summary(down)}   ({_added(down, local)})")
    silent = SilentServer()
    try:
        slow_settings = Settings(url=f"http://127.0.0.1:{silent.port}")
        slow = hook_times(work / "slow", root, 300, slow_settings, remote=True)
    finally:
        silent.close()
    print(f"  remote, server slow: first    {slow[0] * 1000:6.0f} ms (waits for the read timeout)")
    print(f"  remote, server slow: the rest {summary(slow[1:])}   ({_added(slow[1:], local)}; "
          "held off, spooled at once)", flush=True)  # fmt: skip


def _added(times: list[float], baseline: list[float]) -> str:
    return f"{(statistics.median(times) - statistics.median(baseline)) * 1000:+.0f} ms"


# ---- ingest ------------------------------------------------------------------------------------


@contextmanager
def serving(url: str, log: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(url, log, CLAUDE_API_AUTH="required", CLAUDE_API_RATE_LIMIT="off")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def send_all(server_url: str, key: str, events: list, spool_dir: Path) -> None:
    sink = HttpSink(Sender(server_url, key, BULK_POLICY), Spool(spool_dir))
    try:
        for start in range(0, len(events), 10_000):
            sink.usage_batch(events[start : start + 10_000])
        assert sink.stats.spooled == 0 and sink.stats.dead == 0, sink.stats
    finally:
        sink.close()


def count_rows(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM agent_usage")).scalar()
    engine.dispose()
    return int(count or 0)


def bench_ingest(base_url: str, work: Path, count: int) -> None:
    events = make_finished_events(count)
    print(f"\ningest: {count:,} finished agent events, batches of 10,000 (1,000 per request)")
    with schema(base_url) as url:
        engine = make_engine(url)
        upgrade(engine)
        recorder = Recorder(engine)
        started = time.perf_counter()
        for start in range(0, count, 10_000):
            recorder.usage_batch(events[start : start + 10_000])
        direct = time.perf_counter() - started
        engine.dispose()
        assert count_rows(url) == count
    print(f"  direct (recorder)             {direct:6.2f} s  {count / direct:8,.0f} events/s")
    for replicas in (1, 2):
        elapsed = remote_ingest(base_url, work, events, replicas)
        ratio = direct / elapsed
        print(f"  remote, {replicas} replica{'s' if replicas > 1 else ' '}            "
              f"{elapsed:6.2f} s  {count / elapsed:8,.0f} events/s  ({ratio:.0%} of direct)",
              flush=True)  # fmt: skip


def remote_ingest(base_url: str, work: Path, events: list, replicas: int) -> float:
    """Seconds to send `events` through `replicas` servers, two producers per server, each with
    its share of the events."""
    with schema(base_url) as url:
        key = write_key(url)
        servers = [
            ServerProcess(
                url, work / f"r{i}.log", CLAUDE_API_AUTH="required", CLAUDE_API_RATE_LIMIT="off"
            )
            for i in range(replicas)
        ]
        for server in servers:
            server.start()
        try:
            producers = 2 * replicas
            shares = [events[i::producers] for i in range(producers)]
            started = time.perf_counter()
            with ThreadPoolExecutor(producers) as pool:
                sent = [
                    pool.submit(
                        send_all,
                        servers[i % replicas].url,
                        key,
                        shares[i],
                        work / f"spool-{replicas}-{i}",
                    )
                    for i in range(producers)
                ]
                for future in sent:
                    future.result()
            elapsed = time.perf_counter() - started
        finally:
            for server in servers:
                server.stop()
        assert count_rows(url) == len(events)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database URL")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--skip-hook", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # spooling is what the cases measure, not news
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        if not args.skip_hook:
            with schema(args.database_url) as url:
                bench_hook(url, work)
        if not args.skip_ingest:
            bench_ingest(args.database_url, work, args.events)


if __name__ == "__main__":
    main()
