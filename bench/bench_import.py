"""Transcript import throughput against readers that only sum tokens, on one generated corpus.

    python -m bench.bench_import [--size-mb 300] [--dir DIR] [--database-url URL] [--no-ccusage]

Each reader runs as its own process on the same files (page cache warm, after one untimed
read), timed on the wall clock with its peak resident memory:
- a plain-Python reader: `json.loads` on every line, summing deduplicated tokens;
- ccusage 20.0.24 (`ccusage claude daily --offline --json`), installed from the npm registry
  into a cache directory unless --no-ccusage (it reads $CLAUDE_CONFIG_DIR);
- `claude-api import` into a fresh SQLite database (and PostgreSQL with --database-url), which
  also stores every invocation; then again with nothing new; then after some sessions grew.
The token totals of all readers are compared: they must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.transcript_corpus import Corpus, Writer

GROWN_AT = datetime(2026, 5, 20, tzinfo=UTC)
CCUSAGE_VERSION = "20.0.24"
CCUSAGE_CACHE = Path(tempfile.gettempdir()) / "claude-api-bench-ccusage"
TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


@dataclass
class Run:
    name: str
    seconds: float
    peak_mb: float
    output: str


def measure(name: str, command: list[str], env: dict[str, str] | None = None) -> Run:
    """Run `command`, timing it and reading its own peak resident memory from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=out, stderr=err, env={**os.environ, **(env or {})}
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{name} failed ({process.returncode}): {err.read().decode()[-2000:]}")
        return Run(name, seconds, usage.ru_maxrss / 1024, out.read().decode())


def baseline_reader(root: Path) -> dict[str, int]:
    """The plain-Python reader: every line through json.loads, tokens summed once per message."""
    seen: dict[str, dict[str, int]] = {}
    anonymous = 0
    for path in sorted(root.rglob("*.jsonl")):
        with path.open("rb") as file:
            for line in file:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict) or entry.get("type") != "assistant":
                    continue
                message = entry.get("message") or {}
                usage = message.get("usage")
                if not isinstance(usage, dict) or message.get("model") == "<synthetic>":
                    continue
                key = message.get("id")
                if key is None:
                    anonymous += 1
                    key = f"#{anonymous}"
                counts = {name: int(usage.get(name) or 0) for name in TOKEN_KEYS}
                old = seen.get(key)
                if old is None or counts["output_tokens"] > old["output_tokens"]:
                    seen[key] = counts
    return {name: sum(counts[name] for counts in seen.values()) for name in TOKEN_KEYS}


def ccusage_binary() -> Path | None:
    binary = CCUSAGE_CACHE / "node_modules" / ".bin" / "ccusage"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        return None
    CCUSAGE_CACHE.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(CCUSAGE_CACHE),
            f"ccusage@{CCUSAGE_VERSION}",
        ],
        capture_output=True,
        check=False,
    )
    return binary if result.returncode == 0 and binary.exists() else None


def stored_tokens(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    columns = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    totals = dict.fromkeys(TOKEN_KEYS, 0)
    with engine.connect() as connection:
        for table in ("agent_usage", "skill_usage"):
            row = connection.execute(
                text(f"SELECT {', '.join(f'coalesce(sum({c}), 0)' for c in columns)} FROM {table}")
            ).one()
            for key, value in zip(TOKEN_KEYS, row, strict=True):
                totals[key] += int(value)
    engine.dispose()
    return totals


def grow(projects: Path, share: float = 0.02) -> int:
    """Append a turn to the main transcript of `share` of the sessions; returns bytes added."""
    corpus = Corpus(projects.parent, seed=99)
    added = 0
    mains = sorted(
        path for path in projects.glob("*/*.jsonl") if not path.name.startswith("agent-")
    )
    for path in mains[: max(1, int(len(mains) * share))]:
        with path.open("rb") as file:
            first = json.loads(file.readline())
        writer = Writer(corpus, path.stem, first.get("cwd", "/"), "2.1.100", GROWN_AT, None)
        writer.user_prompt()
        for _ in range(5):
            writer.exchange()
        writer.turn_end()
        before = path.stat().st_size
        writer.flush(path)
        added += path.stat().st_size - before
    return added


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=float, default=300.0, help="corpus size (default 300)")
    parser.add_argument(
        "--dir", type=Path, help="corpus directory (kept; default: a temporary one)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", help="also import into this (empty) PostgreSQL database")
    parser.add_argument("--no-ccusage", action="store_true", help="do not run ccusage")
    parser.add_argument("--baseline-reader", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_reader is not None:
        print(json.dumps(baseline_reader(args.baseline_reader)))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    root = args.dir or work / "claude"
    projects = root / "projects"
    marker = root / "corpus.json"
    wanted = {"size_mb": args.size_mb, "seed": args.seed}
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        shutil.rmtree(projects, ignore_errors=True)
        started = time.perf_counter()
        corpus = Corpus(root, seed=args.seed)
        corpus.generate(int(args.size_mb * 1e6))
        marker.write_text(json.dumps(wanted))
        print(
            f"generated {corpus.written / 1e6:.0f} MB: {corpus.sessions} sessions, "
            f"{corpus.lines:,} lines in {time.perf_counter() - started:.1f}s"
        )
    files = list(projects.rglob("*.jsonl"))
    size = sum(path.stat().st_size for path in files)
    print(f"corpus: {root} — {size / 1e6:.0f} MB in {len(files):,} files")
    for path in files:  # warm the page cache, untimed
        path.read_bytes()

    claude_api = str(Path(sys.executable).parent / "claude-api")
    runs: list[Run] = []
    totals: dict[str, dict[str, int]] = {}

    if not args.no_ccusage:
        binary = ccusage_binary()
        if binary is None:
            print("ccusage could not be installed: skipped")
        else:
            run = measure(
                f"ccusage {CCUSAGE_VERSION} (claude daily --offline --json)",
                [str(binary), "claude", "daily", "--offline", "--json"],
                {"CLAUDE_CONFIG_DIR": str(root)},
            )
            runs.append(run)
            report = json.loads(run.output)["totals"]
            totals["ccusage"] = {
                "input_tokens": report["inputTokens"],
                "output_tokens": report["outputTokens"],
                "cache_read_input_tokens": report["cacheReadTokens"],
                "cache_creation_input_tokens": report["cacheCreationTokens"],
            }

    backends = [("SQLite", f"sqlite:///{work / 'bench.db'}")]
    if args.database_url:
        backends.append(("PostgreSQL", args.database_url))
    imported: dict[str, Any] = {}
    for label, url in backends:
        env = {"CLAUDE_API_DATABASE_URL": url}
        command = [claude_api, "import", str(projects), "--json", "--idle-minutes", "0"]
        if label == "SQLite":  # one process, into a database of its own
            single = {"CLAUDE_API_DATABASE_URL": f"sqlite:///{work / 'bench-single.db'}"}
            runs.append(
                measure(
                    f"claude-api import --workers 1, {label}", [*command, "--workers", "1"], single
                )
            )
        run = measure(f"claude-api import, {label} (reads and stores)", command, env)
        runs.append(run)
        imported[label] = json.loads(run.output)
        totals[f"claude-api ({label})"] = stored_tokens(url)
        runs.append(measure(f"claude-api import again, {label} (nothing new)", command, env))

    run = measure(
        "plain Python json.loads reader (sums tokens)",
        [sys.executable, "-m", "bench.bench_import", "--baseline-reader", str(projects)],
    )
    runs.append(run)
    totals["plain Python"] = json.loads(run.output)

    marker.write_text(json.dumps({**wanted, "grown": True}))  # generate afresh next time
    added = grow(projects)
    for label, url in backends:
        command = [claude_api, "import", str(projects), "--json", "--idle-minutes", "0"]
        run = measure(
            f"claude-api import after {added / 1e6:.1f} MB grew, {label}",
            command,
            {"CLAUDE_API_DATABASE_URL": url},
        )
        runs.append(run)
        grown = json.loads(run.output)
        megabytes = grown["bytes_read"] / 1e6
        print(f"  incremental ({label}): read {megabytes:.2f} MB, {grown['events']} events")

    print()
    print(f"{'reader':<64} {'time':>8} {'MB/s':>8} {'peak RSS':>9}  (MB/s: corpus size / time)")
    for run in runs:
        rate = size / 1e6 / run.seconds
        print(f"{run.name:<64} {run.seconds:>7.2f}s {rate:>8.0f} {run.peak_mb:>7.0f}MB")
    for label, summary in imported.items():
        seconds = next(
            run.seconds for run in runs if run.name.startswith(f"claude-api import, {label}")
        )
        print(
            f"claude-api ({label}): {summary['events']:,} events "
            f"({summary['events'] / seconds:,.0f} events/s), {summary['agents']:,} agent and "
            f"{summary['skills']:,} skill invocations, skipped {summary['skipped']}"
        )
    print()
    reference = totals.get("ccusage")
    for name, counts in totals.items():
        verdict = ""
        if reference is not None:
            verdict = "  (= ccusage)" if counts == reference else "  (DIFFERS from ccusage)"
        print(f"tokens {name:<22} {counts}{verdict}")
    first = next(run for run in runs if run.name.startswith("claude-api import, SQLite"))
    again = next(run for run in runs if run.name.startswith("claude-api import again, SQLite"))
    for run in runs:
        if run.name.startswith(("ccusage", "plain")):
            name = run.name.split(" (")[0]
            print(
                f"vs {name}: claude-api's first import takes {first.seconds / run.seconds:.2f} "
                f"times as long, a repeated import {again.seconds / run.seconds:.2f} times"
            )
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
