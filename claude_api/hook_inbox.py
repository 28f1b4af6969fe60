"""The hook inbox: Claude Code's hook payloads, kept on disk until a background worker records
them, so that the hook process itself returns in milliseconds.

One inbox per configuration: the `CLAUDE_API_*` variables, HOME and the XDG directories the
hook ran with, and `--remote`, decide where its events go, so a payload is recorded with the
settings its own hook had (`<data>/hook-inbox/<key>/`, `key` a digest of them; the variables
are kept beside it, private, for `claude-api hook drain`). Each payload is one file of
`pending/`, named `<arrival ns>-<pid>-<random>[.<failed attempts>].json` and holding the bytes
Claude Code sent: written to a temporary file, synced, renamed into place, the directory
synced. The worker records them in name order (arrival order), each with its arrival time,
and removes each once recorded; one that a crash interrupted is recorded again (the event ids
make that harmless). Whoever records holds `worker.lock` (an flock): one worker at a time.

Standard library only: Claude Code runs the hook on every subagent and skill call.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time

from claude_api.guardrails import dbapi

TYPE_CHECKING = False  # importing typing would cost the hook's start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

INBOX_DIRECTORY = "hook-inbox"
PENDING = "pending"
WORKER_LOCK = "worker.lock"
CONFIGURATION = "configuration.json"
DROPPED = "dropped"
LOG_FILE = "hook.log"
MAX_BYTES = 64 * 2**20  # CLAUDE_API_HOOK_INBOX_MAX_BYTES: what may wait, at most
MAX_ATTEMPTS = 3  # a payload whose recording failed this often is given up (logged)
WORKER_MODULE = "claude_api.hook_worker"
# Besides CLAUDE_API_*, what decides where a payload's events go: the data directory (default
# database, spool, state), the config directory (`claude-api login`), `~` in paths.
LOCATION_VARIABLES = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")
_PRIVATE_FILE = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class InboxFull(Exception):
    """The payload would take the inbox past its bound; it is dropped, counted and logged."""


def configuration(environ: Mapping[str, str] | None = None, *, remote: bool) -> dict[str, Any]:
    """What decides where a hook's events go: its `environment` (the variables that matter)
    and `remote` (`--remote`)."""
    environ = os.environ if environ is None else environ
    kept = {
        name: value
        for name, value in environ.items()
        if name.upper().startswith(dbapi.ENV_PREFIX) or name in LOCATION_VARIABLES
    }
    return {"environment": kept, "remote": bool(remote)}


def key_of(config: Mapping[str, Any]) -> str:
    """The inbox's name for a configuration: a digest, since the variables may hold a key."""
    try:  # the built-in SHA-256: hashlib loads OpenSSL, a tenth of the hook's start-up
        from _sha2 import sha256  # Python 3.12 and later
    except ImportError:
        try:
            from _sha256 import sha256
        except ImportError:
            from hashlib import sha256

    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return sha256(text.encode()).hexdigest()[:24]


def root() -> str:
    """Where the inboxes are: `hook-inbox` in the user's data directory."""
    return os.path.join(dbapi.data_directory(), INBOX_DIRECTORY)


def max_bytes() -> int:
    """The bound on what waits in one inbox (CLAUDE_API_HOOK_INBOX_MAX_BYTES, else 64 MiB)."""
    value = dbapi.setting("HOOK_INBOX_MAX_BYTES")
    try:
        return max(int(value), 0) if value else MAX_BYTES
    except ValueError:
        return MAX_BYTES


class Entry:
    """A payload waiting in an inbox: its file's `name`, arrival time (ns since the epoch)
    and failed attempts so far."""

    __slots__ = ("arrived_ns", "attempts", "base", "name")

    def __init__(self, name: str) -> None:
        parts = name.split(".")
        self.name = name
        self.base = parts[0]
        self.arrived_ns = int(self.base.split("-")[0])
        self.attempts = int(parts[1]) if len(parts) == 3 else 0

    @classmethod
    def parse(cls, name: str) -> Entry | None:
        if name.startswith(".") or not name.endswith(".json"):
            return None
        try:
            return cls(name)
        except ValueError:
            return None


class Inbox:
    """One configuration's inbox, at `directory`."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.pending_directory = os.path.join(directory, PENDING)
        self.key = os.path.basename(directory)

    @classmethod
    def of(cls, config: Mapping[str, Any], inbox_root: str | None = None) -> Inbox:
        return cls(os.path.join(inbox_root or root(), key_of(config)))

    # ---- the hook's side ------------------------------------------------------------------

    def create(self, config: Mapping[str, Any]) -> None:
        """Make the inbox (private directories) and keep its configuration, if not done yet."""
        if os.path.isdir(self.pending_directory):
            return
        os.makedirs(os.path.dirname(os.path.dirname(self.directory)), mode=0o700, exist_ok=True)
        for directory in (os.path.dirname(self.directory), self.directory):
            _private_directory(directory)
        # Renamed into place: whoever reads it sees all of it; two hooks write the same bytes.
        temporary = os.path.join(self.directory, f".{CONFIGURATION}.{os.urandom(4).hex()}.tmp")
        _write_new(temporary, json.dumps(config, sort_keys=True).encode())
        os.rename(temporary, os.path.join(self.directory, CONFIGURATION))
        _private_directory(self.pending_directory)

    def put(self, data: bytes, arrived_ns: int, *, limit: int) -> Entry:
        """Keep `data`, durably. Raises InboxFull when it would take the inbox past `limit`
        bytes, OSError when it cannot be written."""
        waiting = self.waiting_bytes()
        if waiting + len(data) > limit:
            raise InboxFull(
                f"{waiting:,} bytes wait in {self.directory} and this payload has "
                f"{len(data):,}; the bound is {limit:,} (CLAUDE_API_HOOK_INBOX_MAX_BYTES)"
            )
        name = f"{arrived_ns:020d}-{os.getpid()}-{os.urandom(4).hex()}.json"
        temporary = os.path.join(self.pending_directory, f".{name}.tmp")
        _write_new(temporary, data)
        os.rename(temporary, os.path.join(self.pending_directory, name))
        _sync_directory(self.pending_directory)
        return Entry(name)

    def count_dropped(self) -> int:
        """Count one more payload dropped because the inbox was full; the count so far."""
        path = os.path.join(self.directory, DROPPED)
        descriptor = os.open(path, os.O_RDWR | _PRIVATE_FILE, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            text = os.pread(descriptor, 64, 0).strip()
            count = (int(text) if text.isdigit() else 0) + 1
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{count}\n".encode(), 0)
        finally:
            os.close(descriptor)
        return count

    # ---- the worker's side ----------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """The payloads waiting, in arrival order."""
        try:
            names = os.listdir(self.pending_directory)
        except FileNotFoundError:
            return []
        found = [entry for entry in map(Entry.parse, names) if entry is not None]
        return sorted(found, key=lambda entry: entry.base)

    def waiting_bytes(self) -> int:
        total = 0
        try:
            with os.scandir(self.pending_directory) as scan:
                for item in scan:
                    try:
                        total += item.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue  # recorded meanwhile
        except FileNotFoundError:
            return 0
        return total

    def read(self, entry: Entry) -> bytes:
        with open(os.path.join(self.pending_directory, entry.name), "rb") as file:
            return file.read()

    def remove(self, entry: Entry) -> None:
        """`entry` is recorded (or given up): forget it."""
        try:
            os.unlink(os.path.join(self.pending_directory, entry.name))
        except FileNotFoundError:
            return
        _sync_directory(self.pending_directory)

    def failed(self, entry: Entry) -> Entry:
        """Count a failed attempt on `entry` in its name; the entry as it is now named."""
        renamed = Entry(f"{entry.base}.{entry.attempts + 1}.json")
        os.rename(
            os.path.join(self.pending_directory, entry.name),
            os.path.join(self.pending_directory, renamed.name),
        )
        _sync_directory(self.pending_directory)
        return renamed

    def dropped(self) -> int:
        """Payloads dropped so far because the inbox was full."""
        try:
            with open(os.path.join(self.directory, DROPPED), "rb") as file:
                text = file.read().strip()
        except FileNotFoundError:
            return 0
        return int(text) if text.isdigit() else 0

    def saved_configuration(self) -> dict[str, Any]:
        with open(os.path.join(self.directory, CONFIGURATION), "rb") as file:
            return json.loads(file.read())

    def remove_stale_temporaries(self, older_than: float = 3600.0) -> None:
        """Temporary files of hooks killed while writing them."""
        try:
            with os.scandir(self.pending_directory) as scan:
                for item in scan:
                    if item.name.startswith(".") and item.name.endswith(".tmp"):
                        try:
                            if time.time() - item.stat().st_mtime > older_than:
                                os.unlink(item.path)
                        except FileNotFoundError:
                            pass
        except FileNotFoundError:
            pass

    # ---- the worker lock ------------------------------------------------------------------

    def try_lock(self) -> int | None:
        """The worker lock, if no one holds it: its descriptor (closing it releases it)."""
        descriptor = os.open(
            os.path.join(self.directory, WORKER_LOCK), os.O_RDWR | _PRIVATE_FILE, 0o600
        )
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return None
            raise
        return descriptor

    def lock(self, timeout: float) -> int | None:
        """The worker lock, waiting up to `timeout` seconds for a worker to finish."""
        deadline = time.monotonic() + timeout
        while True:
            descriptor = self.try_lock()
            if descriptor is not None or time.monotonic() >= deadline:
                return descriptor
            time.sleep(0.05)

    def worker_pid(self) -> int | None:
        """The process id of the worker recording this inbox now, if one is (as it wrote it in
        the lock file, which it empties when it is done). Takes no lock: a hook running
        meanwhile still starts its worker."""
        try:
            with open(os.path.join(self.directory, WORKER_LOCK), "rb") as file:
                text = file.read().strip()
        except FileNotFoundError:
            return None
        if not text.isdigit():
            return None
        try:
            os.kill(int(text), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return int(text)

    def start_worker(self, lock: int) -> int:
        """Start a worker that records this inbox, detached (a session of its own, standard
        streams on /dev/null), handing it the worker `lock` held here; its process id."""
        argv = [sys.executable, "-P", "-m", WORKER_MODULE, self.directory, "--lock-fd", str(lock)]
        os.set_inheritable(lock, True)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            actions = [(os.POSIX_SPAWN_DUP2, null, stream) for stream in (0, 1, 2)]
            try:
                return os.posix_spawn(
                    sys.executable, argv, os.environ, file_actions=actions, setsid=True
                )
            except NotImplementedError:  # no POSIX_SPAWN_SETSID
                import subprocess

                return subprocess.Popen(
                    argv,
                    stdin=null,
                    stdout=null,
                    stderr=null,
                    pass_fds=(lock,),
                    start_new_session=True,
                ).pid
        finally:
            os.close(null)


def inboxes(inbox_root: str | None = None) -> list[Inbox]:
    """Every configuration's inbox under `inbox_root` (default: the data directory's)."""
    inbox_root = inbox_root or root()
    try:
        names = sorted(os.listdir(inbox_root))
    except FileNotFoundError:
        return []
    found = [Inbox(os.path.join(inbox_root, name)) for name in names]
    return [inbox for inbox in found if os.path.isdir(inbox.pending_directory)]


def receive(
    data: bytes, arrived_ns: int, *, remote: bool, environ: Mapping[str, str] | None = None
) -> Entry:
    """The hook's path: keep `data` in this configuration's inbox and start a worker unless one
    is recording it already. Raises InboxFull (counted) or OSError; the payload is then not
    kept."""
    config = configuration(environ, remote=remote)
    inbox = Inbox.of(config)
    inbox.create(config)
    try:
        entry = inbox.put(data, arrived_ns, limit=max_bytes())
    except InboxFull as error:
        count = inbox.count_dropped()
        raise InboxFull(f"{error}; {count:,} dropped so far") from None
    lock = inbox.try_lock()
    if lock is not None:  # else the worker recording this inbox records it before it stops
        try:
            inbox.start_worker(lock)
        finally:
            os.close(lock)
    return entry


def wait_idle(inbox_root: str | None = None, timeout: float = 120.0) -> bool:
    """Wait until no worker is recording any inbox under `inbox_root`; False on timeout.
    After a hook call returned, its payload is then recorded, or kept after a failure. (It
    holds each lock for an instant: a hook starting then leaves its payload for the next.)"""
    deadline = time.monotonic() + timeout
    for inbox in inboxes(inbox_root):
        lock = inbox.lock(max(deadline - time.monotonic(), 0.0))
        if lock is None:
            return False
        os.close(lock)
    return True


def log(message: str, *, source: str = "claude-api-hook", name: str = __name__) -> None:
    """A problem, to stderr and to hook.log in the data directory (as the worker logs)."""
    print(f"{source}: {message}", file=sys.stderr)
    try:
        directory = dbapi.data_directory()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        descriptor = os.open(
            os.path.join(directory, LOG_FILE), os.O_WRONLY | os.O_APPEND | _PRIVATE_FILE, 0o600
        )
        from datetime import datetime

        stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        with open(descriptor, "a", encoding="utf-8") as file:
            file.write(f"{stamp} WARNING {name}: {message}\n")
    except OSError:
        pass


def _private_directory(path: str) -> None:
    os.makedirs(path, 0o700, exist_ok=True)  # only `path` itself: its parent exists


def _write_new(path: str, data: bytes) -> None:
    """A new private file holding `data`, synced; never through anything already there."""
    descriptor = os.open(path, os.O_WRONLY | os.O_EXCL | _PRIVATE_FILE, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        os.unlink(path)
        raise
    os.close(descriptor)


def _sync_directory(path: str) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
