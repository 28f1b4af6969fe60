"""`claude-api serve` as a real child process on loopback, for tests that kill and restart it.

`ServerProcess(database_url, log_path)` starts the console script on a free port, waits until
`/healthz` answers 200, and can be stopped (SIGTERM), killed (SIGKILL) and started again on the
same port. Its output goes to a file, so a full pipe can never stall it.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CLAUDE_API = Path(sys.executable).parent / "claude-api"
START_TIMEOUT = 30.0


def free_port() -> int:
    """A free port below the kernel's ephemeral range: no outgoing connection is given it as its
    local port, so the server can bind it again after a restart."""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


class ServerProcess:
    """One `claude-api serve` child at a time, always on the same port once chosen."""

    def __init__(
        self, database_url: str, log_path: Path, *, arguments: tuple[str, ...] = (), **env: str
    ) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.arguments = arguments  # more options of `serve`, e.g. ("--workers", "2")
        self.env = env
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and return once `/healthz` says ok (migrations applied)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"the server (pid {self.process.pid}) is already running")
        env = {
            **os.environ,
            "CLAUDE_API_DATABASE_URL": self.database_url,
            "CLAUDE_API_AUTH": "off",
            **self.env,
        }
        command = [str(CLAUDE_API), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--log-level", "warning", *self.arguments]
        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts + 1}: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.starts += 1
        self._wait_until_healthy(timeout)

    def _wait_until_healthy(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the server exited with {self.process.returncode} while starting:\n"
                        + self.log()
                    )
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"the server did not start in {timeout} s:\n{self.log()}")
                time.sleep(0.05)  # polling the health endpoint, not waiting on a guess

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing, open transactions abandoned mid-way."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (uvicorn's graceful shutdown), SIGKILL when it takes longer than `timeout`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        """What the server wrote to stdout and stderr, every start so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def server_process(database_url: str, log_path: Path, **env: str) -> Iterator[ServerProcess]:
    """A started server, stopped when the block ends whatever happened in it."""
    server = ServerProcess(database_url, log_path, **env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
