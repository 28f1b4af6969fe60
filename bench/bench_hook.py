"""What the PreToolUse budget hook costs Claude Code before each subagent or skill: the budget
check itself, and the whole `claude-api-hook` process, on a database of demo events, and asking
a server (team mode).

    python -m bench.bench_hook [--database-url URL] [--size 1000000] [--keep DIR]
                               [--checks 300] [--processes 60]

The database is filled with `claude-api demo` data as `bench_queries` fills it (`--keep DIR`
shares its kept databases: `DIR/queries-<size>.db`), and given three budgets that cover the
measured call: one on the most used agent per day, one on its most used project per month and
one on everything per week. Then:

- the check on an open connection (`check_call`: three budgets read from the rollups, running
  invocations included) and with its connection (`launch_decision`, as the hook runs it);
- the whole hook process fed a PreToolUse payload, against a bare `python -c pass` (the floor of
  any Python hook), each run followed by one of the floor so that both meet the same load;
- team mode: the hook asking `claude-api serve` on loopback (`CLAUDE_API_URL`), and that request
  alone.

Each figure is the median (p50) and p99 in milliseconds of `--checks` or `--processes` runs
after one warm-up. Compare ratios: a loaded machine slows every figure alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.bench_queries import fill_demo, kept_database, stored
from bench.bench_tracking import fresh_database
from claude_api.guardrails import dbapi
from claude_api.guardrails.launch import launch_decision
from claude_api.guardrails.verdicts import check_call
from claude_api.models.budgets import set_budget
from claude_api.models.db import write_engine

BIN = Path(sys.executable).parent
HOOK = BIN / "claude-api-hook"


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 (nearest rank) in milliseconds."""
    ordered = sorted(seconds)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    work()  # warm-up
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


def most_used(engine: Engine) -> tuple[str, str]:
    """The most used agent and project."""
    with Session(engine) as session:
        agent = session.execute(
            text("SELECT agent_name FROM agent_usage GROUP BY agent_name ORDER BY count(*) DESC")
        ).first()
        project = session.execute(
            text(
                "SELECT project_id FROM agent_usage WHERE project_id IS NOT NULL "
                "GROUP BY project_id ORDER BY count(*) DESC"
            )
        ).first()
    if agent is None or project is None:
        raise SystemExit("the database holds no agent invocation with a project")
    return agent[0], project[0]


def set_budgets(engine: Engine, agent: str, project: str) -> None:
    with Session(write_engine(engine)) as session:
        set_budget(session, kind="agent", name=agent, period="day", usd=1e6)
        set_budget(session, project_id=project, period="month", tokens=10**15, tz="Europe/Paris")
        set_budget(session, period="week", usd=1e6, action="warn", tz="America/New_York")
        session.commit()


def process_times(
    command: list[str], payload: bytes, env: dict[str, str], runs: int
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Wall p50 and p99, and the median CPU time (user + system), in ms, of the process and of
    `python -c pass` run after it each time (the floor, under the same load), after one
    warm-up: on a busy machine the wall time includes waiting for a core, the CPU time does
    not."""
    wall: dict[str, list[float]] = {"hook": [], "floor": []}
    cpu: dict[str, list[float]] = {"hook": [], "floor": []}
    floor = [sys.executable, "-c", "pass"]
    for attempt in range(runs + 1):
        for name, argv, stdin in (("hook", command, payload), ("floor", floor, b"")):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(argv, input=stdin, env=env, capture_output=True, check=True)
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if attempt:
                wall[name].append(elapsed)
                cpu[name].append(
                    after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                )
    hook, floor_figures = (
        (*percentiles(wall[name]), statistics.median(cpu[name]) * 1000)
        for name in ("hook", "floor")
    )
    return hook, floor_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--size", type=int, default=1_000_000, help="demo events")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep and reuse the database")
    parser.add_argument("--checks", type=int, default=300, help="timed budget checks")
    parser.add_argument("--processes", type=int, default=60, help="timed hook processes")
    args = parser.parse_args()

    if args.keep is not None:
        database = kept_database(args.database_url, args.keep, args.size)
    else:
        database = fresh_database(args.database_url)
    with database as engine:
        count, last = stored(engine)
        if count < args.size:
            filled = fill_demo(engine, args.size, end=datetime.now(UTC), skip=count)
            print(f"filled {filled.events:,} demo events in {filled.seconds:,.0f} s")
            count, last = stored(engine)
        url = engine.url.render_as_string(hide_password=False)
        agent, project = most_used(engine)
        set_budgets(engine, agent, project)
        report(args, engine, url, agent, project, count, last)


def report(
    args: argparse.Namespace,
    engine: Engine,
    url: str,
    agent: str,
    project: str,
    count: int,
    last: datetime | None,
) -> None:
    backend = engine.dialect.name
    # The checks in this process take the last event's time as now, so that their periods
    # hold the data (a kept database may end days ago); the hook processes take the clock's.
    now = last + timedelta(seconds=1) if last is not None else datetime.now(UTC)
    print(
        f"{backend}, {count:,} events (the last at {last}); budgets on agent {agent!r} per day, "
        f"project {project!r} per month, everything per week"
    )
    if last is None or datetime.now(UTC) - last > timedelta(days=1):
        print("note: the data ends before today: the hook processes' periods hold fewer rows")
    connection = dbapi.connect(url)
    rows: list[tuple[str, tuple[float, ...]]] = []
    try:
        rows.append(
            (
                "check, open connection",
                timed(
                    lambda: check_call(
                        connection, kind="agent", name=agent, project_id=project, now=now
                    ),
                    args.checks,
                ),
            )
        )
    finally:
        connection.close()
    rows.append(
        (
            "check with its connection",
            timed(
                lambda: launch_decision(
                    "agent", agent, project_id=project, database_url=url, now=now
                ),
                args.checks,
            ),
        )
    )
    payload = json.dumps(
        {
            "session_id": "3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c",
            "transcript_path": "/nonexistent/3f2a9c1e-5b7d-4e21-9a0c-1d2e3f4a5b6c.jsonl",
            "cwd": project,
            "hook_event_name": "PreToolUse",
            "tool_name": "Agent",
            "tool_input": {"subagent_type": agent, "prompt": "Review src/"},
            "tool_use_id": "toolu_01A",
        }
    ).encode()
    with tempfile.TemporaryDirectory() as home:
        # The processes may write bytecode caches, as an installed package has them.
        dropped = ("CLAUDE", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        env.update(HOME=home, XDG_DATA_HOME=home, CLAUDE_API_DATABASE_URL=url)
        processes = args.processes
        hook, floor = process_times([str(HOOK)], payload, env, processes)
        rows += [("python -c pass (floor)", floor), ("claude-api-hook process", hook)]
        rows += team_mode(url, agent, project, payload, env, args)
    print(f"\n{'':30} {'p50 ms':>9} {'p99 ms':>9} {'CPU ms':>9}")
    for label, (p50, p99, *cpu) in rows:
        print(f"{label:30} {p50:9.1f} {p99:9.1f} " + (f"{cpu[0]:9.1f}" if cpu else f"{'':>9}"))
    figures = dict((label, values) for label, values in rows)
    for mode in ("", "team: "):
        floor, hook = (
            figures[f"{mode}python -c pass (floor)"],
            figures[f"{mode}claude-api-hook process"],
        )
        print(
            f"{mode or 'local: '}the hook process over the floor: {hook[0] - floor[0]:.1f} ms wall "
            f"(p50, x{hook[0] / floor[0]:.1f}), {hook[2] - floor[2]:.1f} ms CPU "
            f"(x{hook[2] / floor[2]:.1f})"
        )
    print("reproduce: python -m bench.bench_hook " + " ".join(shlex.quote(a) for a in sys.argv[1:]))


def team_mode(
    url: str,
    agent: str,
    project: str,
    payload: bytes,
    env: dict[str, str],
    args: argparse.Namespace,
) -> list[tuple[str, tuple[float, ...]]]:
    """The hook and the check asking `claude-api serve` on loopback, which reads `url`."""
    from tests.server_process import ServerProcess

    with tempfile.TemporaryDirectory() as directory:
        server = ServerProcess(url, Path(directory) / "server.log")
        server.start()
        try:
            base = f"http://127.0.0.1:{server.port}"
            check = timed(
                lambda: launch_decision(
                    "agent", agent, project_id=project, url=base, database_url=url
                ),
                args.checks,
            )
            hook, floor = process_times(
                [str(HOOK)], payload, {**env, "CLAUDE_API_URL": base}, args.processes
            )
        finally:
            server.stop()
    return [
        ("team: check over HTTP", check),
        ("team: python -c pass (floor)", floor),
        ("team: claude-api-hook process", hook),
    ]


if __name__ == "__main__":
    main()
