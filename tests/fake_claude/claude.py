#!/usr/bin/env python3
"""A fake `claude` executable: replays a scripted print-mode run and records how it was called.

The script is a JSON file named by FAKE_CLAUDE_SCRIPT: `stdout` (messages, or raw strings for
lines that are not JSON), `stderr`, `exit_code`, and `hang`, `ignore_sigterm`, `spawn_child` to
play a process that outlives its timeout. Each call is appended to FAKE_CLAUDE_RECORD as JSON.
Standard library only: it runs under any Python 3.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="claude")
    parser.add_argument("prompt", nargs="?")
    parser.add_argument("-p", "--print", action="store_true")
    parser.add_argument("--output-format", choices=["text", "json", "stream-json"], default="text")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--agent")
    return parser.parse_args(argv)


def _record(path: str | None, entry: dict[str, Any]) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def main(argv: list[str]) -> int:
    args = _parse(argv)
    script_path = os.environ["FAKE_CLAUDE_SCRIPT"]
    with open(script_path, encoding="utf-8") as file:
        script = json.load(file)
    if script.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = None
    if script.get("spawn_child"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    _record(
        os.environ.get("FAKE_CLAUDE_RECORD"),
        {
            "argv": argv,
            "prompt": args.prompt,
            "agent": args.agent,
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "child_pid": child.pid if child else None,
        },
    )
    # The real CLI's checks, so that a wrong command line fails here as it would there.
    if not args.print:
        sys.stderr.write("fake claude: only print mode (-p) is scripted\n")
        return 2
    if args.output_format == "stream-json" and not args.verbose:
        sys.stderr.write(
            "Error: When using --print, --output-format=stream-json requires --verbose\n"
        )
        return 1
    if args.output_format != "stream-json" or not args.prompt:
        sys.stderr.write("fake claude: only stream-json runs with a prompt are scripted\n")
        return 2
    for number, item in enumerate(script.get("stdout", []), start=1):
        line = item if isinstance(item, str) else json.dumps(item)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if number == script.get("pause_after_line"):
            _wait_for(script["resume_file"])
    if script.get("stderr"):
        sys.stderr.write(script["stderr"])
        sys.stderr.flush()
    while script.get("hang"):
        time.sleep(60)
    return int(script.get("exit_code", 0))


def _wait_for(path: str, limit: float = 20.0) -> None:
    """Pause mid-stream until the test creates `path`, so it can act while the run is going."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
