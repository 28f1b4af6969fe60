"""Writing files that may hold secrets: atomically, with chosen permissions, and never through a
file or link someone else placed where we write."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

PRIVATE = 0o600  # owner read and write: settings that may hold keys, the database
PRIVATE_DIRECTORY = 0o700
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def atomic_write(path: Path, *, mode: int = PRIVATE) -> Iterator[TextIO]:
    """A UTF-8 text file that replaces `path` when the block ends without an error.

    It is written to a fresh temporary file beside `path`, created exclusively (whatever already
    lies at any name, a file or a link, is never opened) with permissions `mode`, synced to
    disk, then renamed over `path`: readers see the old file or the new one, never half of one,
    and a link at `path` is replaced, not followed. If the block fails, `path` is untouched.
    """
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        # fchmod is not narrowed by the umask: `mode` is exactly what the file gets.
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            descriptor = -1  # the file object owns it now
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if descriptor >= 0:
            os.close(descriptor)
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def create_new(path: Path, data: bytes, *, mode: int = PRIVATE) -> None:
    """Create `path` holding `data` with exactly the permissions `mode`, synced to disk.
    FileExistsError when anything, even a dangling link, is already there."""
    descriptor = os.open(path, _CREATE_NEW, mode)
    try:
        os.fchmod(descriptor, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    os.close(descriptor)


def private_directory(path: Path) -> None:
    """Create the directory `path` (and its parents) if missing, the last one readable by its
    owner only; an existing directory is left as it is (it may be /tmp or a home directory)."""
    path.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)


def _sync_directory(directory: Path) -> None:
    # The rename is durable once the directory's entry is on disk too.
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a directory; the data itself is synced
    finally:
        os.close(descriptor)
