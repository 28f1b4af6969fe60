"""The Claude Code child process: draining its stderr, and ending its process group on timeout."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from typing import IO

logger = logging.getLogger(__name__)

STDERR_LIMIT = 64 * 1024  # bytes of stderr kept: its end is what explains a failure


class TailReader:
    """Drains a pipe on a thread (so the child never blocks on a full pipe), keeping its end."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        self._tail = bytearray()
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[bytes] | None) -> None:
        if pipe is None:
            return
        with pipe:
            while chunk := os.read(pipe.fileno(), 65536):
                self._tail += chunk
                if len(self._tail) > STDERR_LIMIT:
                    del self._tail[:-STDERR_LIMIT]

    def join(self, timeout: float) -> None:
        """Wait for the end of the pipe, at most `timeout` seconds (a grandchild may hold it)."""
        self._thread.join(timeout)

    def text(self) -> str:
        """The kept end of the output, decoded."""
        return bytes(self._tail).decode("utf-8", "replace").strip()


class Watchdog:
    """Ends the process group when the timeout passes: SIGTERM, then SIGKILL after a grace."""

    def __init__(
        self, process: subprocess.Popen[bytes], timeout: float | None, grace: float
    ) -> None:
        self.fired = False
        self._process = process
        self._grace = grace
        self._cancelled = threading.Event()
        self._thread: threading.Thread | None = None
        if timeout is not None:
            self._thread = threading.Thread(target=self._watch, args=(timeout,), daemon=True)
            self._thread.start()

    def _watch(self, timeout: float) -> None:
        if self._cancelled.wait(timeout):
            return
        self.fired = True
        pid = self._process.pid
        logger.warning("Claude Code (pid %d) timed out after %gs; terminating it", pid, timeout)
        kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        while self._process.poll() is None and time.monotonic() < deadline:
            if self._cancelled.wait(0.05):
                break
        # Children may outlive a leader that obeyed SIGTERM: kill what is left of the group.
        kill_group(pid, signal.SIGKILL)

    def cancel(self) -> None:
        """Stand down; if it already fired, wait until the group got its SIGKILL."""
        self._cancelled.set()
        if self._thread is not None:
            self._thread.join()


def kill_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to every process of the group; a group already gone is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def exit_text(exit_code: int) -> str:
    """How a process ended, from its return code, in words."""
    if exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited with code {exit_code}"
