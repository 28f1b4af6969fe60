"""How long claude-api processes take to start and, above all, how long the hook Claude Code runs
on every subagent and skill call keeps it waiting; each against `python -c pass` measured in the
same run.

    python -m bench.bench_startup [--runs 7] [--events 2000] [--hook-calls 200] [--before DIR]

Start-up: `claude-api --help` and `claude-api agents stats --json` on a small database
(in-process): the median wall time and CPU time of `--runs` runs after one warm-up. With
`--before DIR` (the source tree of an earlier commit, e.g. `git archive REV | tar -x -C DIR`)
each command also runs with that tree's `claude_api` (first on PYTHONPATH), alternately with
this one, so that both meet the same load. The processes may write bytecode caches (as an
installed package has them): a stale cache would time the compiler. `--hook-calls 0` times the
start-up only.

The hook: `--hook-calls` calls (after 3 warm-ups) of each command, each fed the PostToolUse
payload of a session of its own (a prompt, an Agent call and its result, as Claude Code writes
them), each call followed by a `python -c pass` so that both meet the same load; p50 and p99 of
the wall time in milliseconds:

- `claude-api-hook` (what `hook install` installs) on SQLite, and with `--remote` in team mode
  against `claude-api serve` on loopback: it keeps the payload in the hook inbox and starts the
  worker when none runs; the worker records in the background, as it does for Claude Code;
- `claude-api hook` (the command of earlier installs), which does the same after loading Typer;
- recording in the foreground (`python -m claude_api.hook_worker --payload`): what the hook did
  before the inbox, without Typer (fewer calls).

After each series: the time until the workers have recorded every payload (from the end of the
last call), and a check that every session's two invocations are stored. Compare ratios: a
loaded machine slows every figure alike.
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
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claude_api import hook_inbox
from claude_api.models.db import make_engine
from tests.import_helpers import agents
from tests.server_process import ServerProcess
from tests.transcripts import Ledger, Transcript, agent_call, text_block

BIN = Path(sys.executable).parent
CLAUDE_API = BIN / "claude-api"
CLAUDE_API_HOOK = BIN / "claude-api-hook"
START = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
WARM_UP = 3


def percentiles(milliseconds: list[float]) -> tuple[float, float]:
    """p50 and p99 (nearest rank)."""
    ordered = sorted(milliseconds)
    return statistics.median(ordered), ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def session_payload(projects: Path) -> bytes:
    """A new session on disk and the PostToolUse payload of its Agent call."""
    session_id = str(uuid.uuid4())
    main = Transcript(Ledger(), session_id=session_id, cwd="/home/dev/demo", start=START)
    main.prompt("Review src/")
    call = agent_call("code-reviewer")
    main.respond(call, usage=(12, 140, 18000, 900))
    main.agent_result(call["id"], "a" + session_id[:15], agent_type="code-reviewer")
    main.respond(text_block("Reviewed."), usage=(3, 20, 18100, 0))
    path = main.write(projects / f"{session_id}.jsonl")
    return json.dumps(
        {
            "session_id": session_id,
            "transcript_path": str(path),
            "cwd": "/home/dev/demo",
            "permission_mode": "default",
            "hook_event_name": "PostToolUse",
            "tool_name": "Agent",
            "tool_input": call["input"],
            "tool_response": {"status": "completed", "totalDurationMs": 60000},
            "tool_use_id": call["id"],
            "duration_ms": 60120,
        }
    ).encode()


def run_timed(command: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, float]:
    """The wall time and the CPU time (user + system) of one run of `command`, in ms: on a busy
    machine the wall time includes waiting for a core, the CPU time does not. A worker the
    hook starts is not its child: its time is not counted."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, input=stdin, env=env, capture_output=True, check=True)
    elapsed = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, used * 1000


def hook_series(
    command: list[str], env: dict[str, str], projects: Path, calls: int
) -> dict[str, Any]:
    """`calls` hook calls, each with a `python -c pass` after it; p50/p99 of both, then the
    wait until every payload is recorded."""
    hook_ms: list[float] = []
    floor_ms: list[float] = []
    hook_cpu: list[float] = []
    floor_cpu: list[float] = []
    for attempt in range(WARM_UP + calls):
        payload = session_payload(projects)
        elapsed, cpu = run_timed(command, payload, env)
        floor, floor_used = run_timed([sys.executable, "-c", "pass"], b"", env)
        if attempt >= WARM_UP:
            hook_ms.append(elapsed)
            hook_cpu.append(cpu)
            floor_ms.append(floor)
            floor_cpu.append(floor_used)
    started = time.perf_counter()
    root = str(Path(env["XDG_DATA_HOME"]) / "claude-api" / hook_inbox.INBOX_DIRECTORY)
    if not hook_inbox.wait_idle(root, 600):
        raise SystemExit("the hook workers did not finish within 10 minutes")
    left = sum(len(inbox.entries()) for inbox in hook_inbox.inboxes(root))
    return {
        "hook": percentiles(hook_ms),
        "floor": percentiles(floor_ms),
        "cpu": (statistics.median(hook_cpu), statistics.median(floor_cpu)),
        "drained_s": time.perf_counter() - started,
        "left": left,
        "sessions": WARM_UP + calls,
    }


def stored_invocations(url: str) -> int:
    engine = make_engine(url)
    try:
        return len(agents(engine))
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each start-up")
    parser.add_argument("--events", type=int, default=2000, help="demo events in the database")
    parser.add_argument("--hook-calls", type=int, default=200, help="timed calls of each hook")
    parser.add_argument(
        "--before", type=Path, metavar="DIR", help="an earlier source tree to time the start-up of"
    )
    args = parser.parse_args()
    if args.before is not None and not (args.before / "claude_api" / "__init__.py").is_file():
        parser.error(f"{args.before} holds no claude_api package")
    print(f"$ {shlex.join([sys.executable, '-m', 'bench.bench_startup', *sys.argv[1:]])}")
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        kept = ("CLAUDE_", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith(kept)},
            "CLAUDE_API_DATABASE_URL": f"sqlite:///{home / 'analytics.db'}",
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "COLUMNS": "80",
        }
        start_up(env, args)
        if args.hook_calls > 0:
            hooks(home, env, args)


def start_up(env: dict[str, str], args: argparse.Namespace) -> None:
    subprocess.run(
        [str(CLAUDE_API), "demo", "--events", str(args.events)],
        env=env,
        capture_output=True,
        check=True,
    )
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("claude-api --help", [str(CLAUDE_API), "--help"]),
        (
            f"claude-api agents stats --json ({args.events:,} events)",
            [str(CLAUDE_API), "agents", "stats", "--json"],
        ),
    ]
    trees = {"now": env}
    if args.before is not None:
        trees = {"before": {**env, "PYTHONPATH": str(args.before.resolve())}, **trees}
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for attempt in range(args.runs + 1):  # the first is the warm-up
        for label, command in cases:
            for tree, tree_env in trees.items():
                elapsed, used = run_timed(command, b"", tree_env)
                if attempt:
                    wall.setdefault((label, tree), []).append(elapsed)
                    cpu.setdefault((label, tree), []).append(used)
    print(f"\nstart-up: median of {args.runs} runs after a warm-up, in ms")
    header = f"{'command':<48}"
    for tree in trees:
        header += f" {tree + ' wall':>11} {'x floor':>8} {tree + ' CPU':>10} {'x floor':>8}"
    print(header)
    floor_label = cases[0][0]
    for label, _ in cases:
        line = f"{label:<48}"
        for tree in trees:
            elapsed = statistics.median(wall[label, tree])
            used = statistics.median(cpu[label, tree])
            floor = statistics.median(wall[floor_label, tree])
            floor_cpu = statistics.median(cpu[floor_label, tree])
            line += (
                f" {elapsed:>11.0f} {elapsed / floor:>8.1f} {used:>10.0f} {used / floor_cpu:>8.1f}"
            )
        print(line)
    print("CPU: median user + system time of the process; x floor: over `python -c pass`")


def hooks(home: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    calls = args.hook_calls
    rows: list[tuple[str, dict[str, Any], str]] = []
    local_url = f"sqlite:///{home / 'hook.db'}"
    local = {**env, "CLAUDE_API_DATABASE_URL": local_url}
    rows.append(
        (
            "claude-api-hook, SQLite",
            hook_series([str(CLAUDE_API_HOOK)], local, home / "projects-local", calls),
            local_url,
        )
    )
    team_url = f"sqlite:///{home / 'team.db'}"
    server = ServerProcess(team_url, home / "server.log")
    server.start()
    try:
        remote = {**env, "CLAUDE_API_URL": server.url}
        rows.append(
            (
                "claude-api-hook --remote, team mode",
                hook_series(
                    [str(CLAUDE_API_HOOK), "--remote"], remote, home / "projects-team", calls
                ),
                team_url,
            )
        )
    finally:
        server.stop()
    old_url = f"sqlite:///{home / 'old.db'}"
    rows.append(
        (
            "claude-api hook (earlier installs)",
            hook_series(
                [str(CLAUDE_API), "hook"],
                {**env, "CLAUDE_API_DATABASE_URL": old_url},
                home / "projects-old",
                max(10, calls // 10),
            ),
            old_url,
        )
    )
    foreground_url = f"sqlite:///{home / 'foreground.db'}"
    rows.append(
        (
            "recording in the foreground",
            hook_series(
                [sys.executable, "-P", "-m", hook_inbox.WORKER_MODULE, "--payload"],
                {**env, "CLAUDE_API_DATABASE_URL": foreground_url},
                home / "projects-foreground",
                max(10, calls // 10),
            ),
            foreground_url,
        )
    )
    print(f"\nthe hook: p50 and p99 in ms of {calls} calls ({max(10, calls // 10)} for the last")
    print("two), each call followed by `python -c pass` (the floor, under the same load)")
    print(
        f"{'command':<38} {'p50':>7} {'p99':>7} {'floor p50':>10} {'floor p99':>10} "
        f"{'x floor p50':>12} {'CPU':>6} {'floor CPU':>10} {'recorded after':>15}"
    )
    for label, result, url in rows:
        (p50, p99), (floor50, floor99) = result["hook"], result["floor"]
        cpu, floor_cpu = result["cpu"]
        stored = stored_invocations(url)
        expected = 2 * result["sessions"]
        if result["left"] or stored != expected:
            raise SystemExit(f"{label}: {stored} of {expected} invocations stored")
        print(
            f"{label:<38} {p50:>7.1f} {p99:>7.1f} {floor50:>10.1f} {floor99:>10.1f} "
            f"{p50 / floor50:>12.1f} {cpu:>6.1f} {floor_cpu:>10.1f} "
            f"{result['drained_s']:>14.1f}s"
        )
    print("CPU: median user + system time of the process (the worker it starts not counted)")
    print("every session's invocations stored (2 each); nothing left in the inbox")


if __name__ == "__main__":
    main()
