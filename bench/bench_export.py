"""`claude-api analytics export` of a million invocations in bounded memory.

    python -m bench.bench_export [--rows 1000000] [--baseline-rows 10000] [--format csv|jsonl]
                                 [--repeat 3] [--keep DIR]

Fills two temporary SQLite files through the write path (agents and skills, batches of 10,000),
or reuses those an earlier run kept in `--keep DIR`, then runs the console script in a
subprocess on each, in-process (no server): the baseline and the full export. Prints rows/s and
each run's peak RSS; bounded memory means the ratio of the peak RSS of the full export to the
baseline's stays near 1, whatever the number of rows.

On the full database it then times, `--repeat` times in turn, a plain dump of both usage tables
with `sqlite3` and `csv` (no filters, no order, no escaping: the floor of any export), the console
script in-process, and the console script against a `claude-api serve` on loopback (`--url`, the
streaming endpoint), and prints the median of each and each export's median against the plain
dump's, measured in the same run. CPU seconds (user + system; over HTTP the client's and the
server's) are printed beside the wall-clock seconds: on a busy machine they vary less.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlmodel import Session

from claude_api.events import Kind, Status, UsageEvent
from claude_api.models.db import make_engine, upgrade, write_engine
from claude_api.models.write import store_events

BATCH = 10_000
AGENTS = [f"agent-{i}" for i in range(40)]
SKILLS = [f"skill-{i}" for i in range(15)]
MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
CLAUDE_API = Path(sys.executable).parent / "claude-api"


def events(count: int) -> Iterator[list[UsageEvent]]:
    """`count` finished invocations, one in five a skill, in batches of BATCH."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for first in range(0, count, BATCH):
        batch = []
        for i in range(first, min(first + BATCH, count)):
            skill = i % 5 == 4
            failed = i % 17 == 0
            batch.append(
                UsageEvent(
                    event_id=uuid.uuid4(),
                    kind=Kind.SKILL if skill else Kind.AGENT,
                    name=SKILLS[i % len(SKILLS)] if skill else AGENTS[(i * 7919) % len(AGENTS)],
                    task_id=f"task-{i // 5}",
                    project_id=f"project-{i % 3}",
                    timestamp=start + timedelta(seconds=i // 2),  # pairs share an instant
                    status=Status.FAILED if failed else Status.COMPLETED,
                    duration_seconds=1 + (i % 300) / 10,
                    cost_usd=(i % 1000) / 10_000,
                    input_tokens=1000 + i % 5000,
                    output_tokens=100 + i % 900,
                    model=MODELS[i % len(MODELS)],
                    error_message="tool failed: =cmd()" if failed else None,
                    source="bench",
                )
            )
        yield batch


def fill(path: Path, rows: int) -> float:
    """Store `rows` invocations in a new SQLite file; returns the seconds it took."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    began = time.perf_counter()
    writer = write_engine(engine)
    for batch in events(rows):
        with Session(writer) as session:
            store_events(session, batch)
            session.commit()
    engine.dispose()
    return time.perf_counter() - began


@dataclass
class Run:
    rows: int
    seconds: float
    peak_rss_mb: float
    file_mb: float
    cpu_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def export(database: Path, target: Path, export_format: str, url: str | None = None) -> Run:
    """Run the console script on `database` (or against the server at `url`); its own peak RSS
    comes from wait4."""
    env = {**os.environ, "CLAUDE_API_DATABASE_URL": f"sqlite:///{database}"}
    env.pop("CLAUDE_API_URL", None)
    command = [str(CLAUDE_API), "analytics", "export", "-o", str(target), "--format", export_format]
    command += ["--url", url] if url else []
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    message = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"export failed ({process.returncode}): {message}")
    with target.open("rb") as file:
        lines = sum(1 for _ in file)
    rows = lines - 1 if export_format == "csv" else lines
    size = target.stat().st_size / 2**20
    return Run(rows, seconds, usage.ru_maxrss / 1024, size, usage.ru_utime + usage.ru_stime)


def plain_dump(database: Path, target: Path) -> Run:
    """Both usage tables written with `sqlite3` and `csv` in a subprocess, as they are stored."""
    script = (
        "import csv, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "with open(sys.argv[2], 'w', newline='') as f:\n"
        "    w = csv.writer(f)\n"
        "    for table in ('agent_usage', 'skill_usage'):\n"
        "        w.writerows(db.execute(f'SELECT * FROM {table}'))\n"
    )
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", script, str(database), str(target)])
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the plain dump failed")
    with target.open("rb") as file:
        rows = sum(1 for _ in file)
    size = target.stat().st_size / 2**20
    return Run(rows, seconds, usage.ru_maxrss / 1024, size, usage.ru_utime + usage.ru_stime)


@dataclass
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """The CPU seconds (user + system) the server has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(database: Path) -> Iterator[Server]:
    """`claude-api serve` on `database` at a free loopback port, until the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "CLAUDE_API_DATABASE_URL": f"sqlite:///{database}"}
    # The invocations start on 2026-01-01: keep them from the purge a minute after the start.
    env["CLAUDE_API_RETENTION_DAYS"] = "0"
    command = [str(CLAUDE_API), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        process.wait(30)


def median(runs: list[Run]) -> Run:
    """The median of each figure of `runs` (of the same export)."""
    return Run(
        rows=runs[0].rows,
        seconds=statistics.median(run.seconds for run in runs),
        peak_rss_mb=statistics.median(run.peak_rss_mb for run in runs),
        file_mb=runs[0].file_mb,
        cpu_seconds=statistics.median(run.cpu_seconds for run in runs),
    )


def report(label: str, run: Run) -> None:
    print(
        f"{label:<9} {run.rows:>10,} rows  {run.seconds:>8.1f} s  CPU {run.cpu_seconds:>6.1f} s  "
        f"{run.rows_per_second:>9,.0f} rows/s  peak RSS {run.peak_rss_mb:>7.1f} MB  "
        f"file {run.file_mb:>8.1f} MB"
    )


def compare(database: Path, folder: Path, export_format: str, repeat: int) -> dict[str, Run]:
    """The plain dump and the full export in-process and over HTTP, `repeat` times in turn
    (so that a busier moment of the machine weighs on each alike); the median of each."""
    timed: dict[str, list[Run]] = {"plain": [], "full": [], "http": []}
    with server(database) as serving:
        for _ in range(repeat):
            timed["plain"].append(plain_dump(database, folder / "plain.csv"))
            target = folder / f"full.{export_format}"
            timed["full"].append(export(database, target, export_format))
            target = folder / f"http.{export_format}"
            before = serving.cpu_seconds()
            run = export(database, target, export_format, serving.url)
            run.cpu_seconds += serving.cpu_seconds() - before  # the client's and the server's
            timed["http"].append(run)
    if (folder / f"full.{export_format}").read_bytes() != target.read_bytes():
        raise SystemExit("the exports in-process and over HTTP differ")
    return {label: median(runs) for label, runs in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the full export")
    parser.add_argument("--baseline-rows", type=int, default=10_000, help="rows of the baseline")
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each full export")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the filled databases in DIR and reuse them when they are there already",
    )
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        runs = {}
        for label, rows in (("baseline", arguments.baseline_rows), ("full", arguments.rows)):
            kept = arguments.keep / f"{label}-{rows}.db" if arguments.keep else None
            database = kept or folder / f"{label}.db"
            if kept is None or not kept.exists():
                if kept is not None:
                    kept.parent.mkdir(parents=True, exist_ok=True)
                # In a process of its own: a child of a bench that grew while filling would
                # count the bench's memory in its own peak RSS (fork copies it before exec).
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(1, mp_context=context) as pool:
                    seconds = pool.submit(fill, database, rows).result()
                print(f"stored {rows:,} rows through the write path in {seconds:.1f} s")
            runs[label] = export(database, folder / f"{label}.{arguments.format}", arguments.format)
            expected = rows
            if runs[label].rows != expected:
                raise SystemExit(f"{label}: exported {runs[label].rows:,} rows, not {expected:,}")
            if label == "full":
                runs.update(compare(database, folder, arguments.format, arguments.repeat))
            if kept is None:
                database.unlink()
        print(f"$ {shlex.join([sys.executable, '-m', 'bench.bench_export', *sys.argv[1:]])}")
        for label, run in runs.items():
            report(label, run)
        for label in ("full", "http"):
            print(
                f"{label} export time / plain sqlite3+csv dump time: "
                f"{runs[label].seconds / runs['plain'].seconds:.2f} "
                f"(CPU seconds: {runs[label].cpu_seconds / runs['plain'].cpu_seconds:.2f})"
            )
        ratio = runs["full"].peak_rss_mb / runs["baseline"].peak_rss_mb
        scale = runs["full"].rows / runs["baseline"].rows
        print(f"peak RSS full / baseline: {ratio:.2f} for {scale:,.0f}x the rows")


if __name__ == "__main__":
    main()
