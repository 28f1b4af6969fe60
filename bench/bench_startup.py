"""How long the `claude-api` console script takes to start: `--help`, `agents stats --json` on a
small database (in-process), and one `claude-api hook` call (Claude Code waits for it on every
subagent and skill call), each against `python -c pass` measured in the same run.

    python -m bench.bench_startup [--runs 7] [--events 2000]

Each figure is the median wall time of `--runs` runs after one warm-up, in milliseconds; the
ratio to `python -c pass` is what to compare between machines (a loaded machine slows every
figure alike). The hook call gets a SubagentStop payload for a session without transcripts, so
it measures start-up and the hook's own path, not an import of a transcript.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLAUDE_API = Path(sys.executable).parent / "claude-api"


def median_ms(command: list[str], *, env: dict[str, str], runs: int, stdin: str = "") -> float:
    """The median wall time of `command` in milliseconds, after one warm-up run."""
    times = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(
            command, input=stdin, env=env, capture_output=True, text=True, check=True, timeout=300
        )
        if attempt:
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command")
    parser.add_argument("--events", type=int, default=2000, help="demo events in the database")
    args = parser.parse_args()
    print(f"$ {shlex.join([sys.executable, '-m', 'bench.bench_startup', *sys.argv[1:]])}")
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("CLAUDE_")},
            "CLAUDE_API_DATABASE_URL": f"sqlite:///{home / 'analytics.db'}",
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "COLUMNS": "80",
        }
        subprocess.run(
            [str(CLAUDE_API), "demo", "--events", str(args.events)],
            env=env,
            capture_output=True,
            check=True,
        )
        payload = json.dumps(
            {
                "hook_event_name": "SubagentStop",
                "session_id": "00000000-0000-4000-8000-000000000000",
                "transcript_path": str(home / "missing" / "session.jsonl"),
                "cwd": str(home),
            }
        )
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"], ""),
            ("claude-api --help", [str(CLAUDE_API), "--help"], ""),
            (
                f"claude-api agents stats --json ({args.events:,} events)",
                [str(CLAUDE_API), "agents", "stats", "--json"],
                "",
            ),
            ("claude-api hook (SubagentStop)", [str(CLAUDE_API), "hook"], payload),
        ]
        floor = None
        print(f"median of {args.runs} runs after a warm-up")
        print(f"{'command':<48} {'ms':>8} {'x python -c pass':>17}")
        for label, command, stdin in cases:
            elapsed = median_ms(command, env=env, runs=args.runs, stdin=stdin)
            floor = floor or elapsed
            print(f"{label:<48} {elapsed:>8.0f} {elapsed / floor:>17.1f}")


if __name__ == "__main__":
    main()
