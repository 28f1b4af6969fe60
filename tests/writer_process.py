"""Writers of usage events in their own processes, started together, for the concurrency tests.

Parent side: `WriterProcess(kind, spec, directory)` runs `python -m tests.writer_process SPEC`;
the child sets up (imports, engine, tracker), says it is ready, waits for "go" on stdin, writes,
and prints one JSON line with what it did (tracker stats, warnings it logged, results).
Child side, by `kind`: `executor` (run_task with a fake claude, on threads sharing one tracker),
`bulk` (Tracker.emit of events read from a file), `import` (import_transcripts) and `migrate`
(upgrade, as every process does when it opens the database).
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
READY = "ready"


class WriterProcess:
    """One writer child; `start`, `wait_ready`, `go`, `result`; `kill` in any case."""

    def __init__(self, kind: str, spec: dict[str, Any], directory: Path, name: str) -> None:
        self.kind = kind
        self.name = name
        self.spec_path = directory / f"{name}.json"
        self.spec_path.write_text(json.dumps({"kind": kind, **spec}), encoding="utf-8")
        self.log_path = directory / f"{name}.log"
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> None:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.writer_process", str(self.spec_path)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _next_line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name}: no answer in {timeout} s\n{self.log()}") from None
        if line is None:
            raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
        return line

    def wait_ready(self, timeout: float = 60.0) -> None:
        line = self._next_line(timeout)
        if line != READY:
            raise RuntimeError(f"{self.name}: expected {READY!r}, got {line!r}\n{self.log()}")

    def go(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.close()

    def result(self, timeout: float = 60.0) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self._next_line(timeout))
        assert self.process is not None
        self.process.wait(10)
        if self.process.returncode != 0:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}\n{self.log()}")
        return answer

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-5000:]


# ---- child side ------------------------------------------------------------------------------


class _Warnings(logging.Handler):
    """Keeps every warning or error the project's code logs: a retry is a fault too."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}"[:500])


def _stats(tracker: Any) -> dict[str, Any]:
    stats = tracker.stats
    return {
        "emitted": stats.emitted,
        "stored": stats.stored,
        "dropped": stats.dropped,
        "plugin_failures": dict(stats.plugin_failures),
    }


def _main(spec_path: str) -> None:
    from claude_api.models.db import make_engine
    from claude_api.tracking import build_tracker

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    warnings = _Warnings()
    logging.getLogger("claude_api").addHandler(warnings)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    engine = make_engine(spec["database_url"])
    tracker = build_tracker(engine, load_entrypoints=False)
    work = WORK[spec["kind"]](spec, engine, tracker)
    print(READY, flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    started = time.perf_counter()
    outcome = work()
    closed = tracker.close(60)
    seconds = time.perf_counter() - started
    engine.dispose()
    answer = {
        "outcome": outcome,
        "stats": _stats(tracker),
        "closed": closed,
        "warnings": warnings.messages,
        "seconds": seconds,
    }
    print(json.dumps(answer), flush=True)


def _executor(spec: dict[str, Any], engine: Any, tracker: Any) -> Any:
    from claude_api.config import Settings
    from claude_api.executor import run_task

    settings = Settings(claude_bin=spec["claude_bin"], database_url=spec["database_url"])

    def one(task_id: str) -> dict[str, Any]:
        result = run_task(
            spec["prompt"],
            tracker=tracker,
            task_id=task_id,
            project_id=spec["project_id"],
            settings=settings,
        )
        return result.to_dict()

    def work() -> list[dict[str, Any]]:
        with ThreadPoolExecutor(spec["threads"]) as pool:
            return list(pool.map(one, spec["task_ids"]))

    return work


def _bulk(spec: dict[str, Any], engine: Any, tracker: Any) -> Any:
    from claude_api.events import UsageEvent

    items = json.loads(Path(spec["events_path"]).read_text(encoding="utf-8"))
    events = [UsageEvent.model_validate(item) for item in items]

    def work() -> int:
        for event in events:
            tracker.emit(event)
        return len(events)

    return work


def _import(spec: dict[str, Any], engine: Any, tracker: Any) -> Any:
    from datetime import timedelta

    from claude_api.importer import ImportOptions, import_transcripts

    def work() -> dict[str, Any]:
        summary = import_transcripts(
            [Path(spec["root"])],
            engine=engine,
            tracker=tracker,
            options=ImportOptions(idle=timedelta(0)),
        )
        return dict(summary.to_dict())

    return work


def _migrate(spec: dict[str, Any], engine: Any, tracker: Any) -> Any:
    from claude_api.models.db import current_revision, upgrade

    def work() -> str | None:
        upgrade(engine)
        return current_revision(engine)

    return work


WORK = {"executor": _executor, "bulk": _bulk, "import": _import, "migrate": _migrate}

if __name__ == "__main__":
    _main(sys.argv[1])
