"""A real uvicorn server on loopback for tests: `with serve(app) as base_url: ...`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    """uvicorn's server, which `stop()` stops at once rather than at its next tick (every 0.1 s,
    when uvicorn looks at `should_exit`)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _woken: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._woken = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        ticking = asyncio.ensure_future(super().main_loop())
        woken = asyncio.ensure_future(self._woken.wait())
        await asyncio.wait({ticking, woken}, return_when=asyncio.FIRST_COMPLETED)
        for task in (ticking, woken):
            task.cancel()

    def stop(self) -> None:
        self.should_exit = True
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            # A closed loop (RuntimeError) means the server has stopped already.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(woken.set)


@contextmanager
def serve(app: ASGIApp, *, host: str = "127.0.0.1", timeout: float = 10.0) -> Iterator[str]:
    """Run `app` under uvicorn in a thread and yield its base URL, e.g. `http://127.0.0.1:41234`.

    The socket is bound (to port 0: the kernel picks a free port) before uvicorn starts, so no
    other process can take the port meanwhile. The app's lifespan runs; the server stops when the
    block ends.
    """
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket's proto says TCP, and without it every response waits 40 ms (Nagle + delayed
    # ACK against uvicorn's separate header and body writes).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,  # leave the test's logging alone (uvicorn's dictConfig would replace it)
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    # Signal handlers are only installed from the main thread, so this thread leaves them alone.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://{host}:{port}"
    try:
        _wait_until_serving(server, thread, base_url, timeout)
        yield base_url
    finally:
        server.stop()
        thread.join(timeout)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on {base_url} did not stop within {timeout} s")


def _wait_until_serving(
    server: uvicorn.Server, thread: threading.Thread, base_url: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn on {base_url} exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn on {base_url} did not start within {timeout} s")
        time.sleep(0.01)
    # Started means listening; one round trip proves the app answers (any status will do).
    httpx.get(base_url, timeout=timeout)
