"""The hook inbox's worker process: started detached by the hook, it records the payloads
waiting in an inbox (`hook_drain.drain`), then exits.

    python -P -m claude_api.hook_worker INBOX --lock-fd N    started detached by the hook
    python -P -m claude_api.hook_worker --payload [--remote] --arrived-ns NS
                                                             one payload on stdin, in the
                                                             foreground (the inbox cannot be
                                                             written)

Its problems go to hook.log in the data directory (its standard streams are /dev/null).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from claude_api import hook_inbox
from claude_api.hook_drain import (
    claim,
    describe,
    drain,
    open_hook_producer,
    record_payload,
    relock,
)
from claude_api.hook_inbox import Inbox

logger = logging.getLogger(__name__)


def log_to_file() -> None:
    """Log warnings and errors to hook.log in the data directory (private)."""
    from claude_api.files import private_directory

    try:
        directory = Path(hook_inbox.root()).parent
        private_directory(directory)
        path = directory / hook_inbox.LOG_FILE
        # The log names sessions and projects: created readable by its owner only.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600))
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    parser.add_argument("inbox", nargs="?", help="the inbox directory to record")
    parser.add_argument("--lock-fd", type=int, help="the worker lock, held for this process")
    parser.add_argument("--payload", action="store_true", help="record one payload from stdin")
    parser.add_argument("--arrived-ns", type=int, help="its arrival time (ns since the epoch)")
    parser.add_argument("--remote", action="store_true", help="team mode, for --payload")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)
    log_to_file()
    if args.payload:
        return _record_stdin(args.arrived_ns or time.time_ns(), remote=args.remote)
    if not args.inbox:
        parser.error("give an inbox directory or --payload")
    return _work(Inbox(args.inbox), args.lock_fd)


def _work(inbox: Inbox, lock: int | None) -> int:
    if lock is None:
        lock = inbox.try_lock()
        if lock is None:
            return 0  # a worker is recording it
    elif not relock(lock):
        logger.error("hook worker started without its inbox's lock; another worker records it")
        os.close(lock)
        return 1
    os.set_inheritable(lock, False)
    try:
        config = inbox.saved_configuration()
    except (OSError, ValueError) as error:
        logger.error("hook inbox %s cannot be recorded: %s", inbox.directory, error)
        os.close(lock)
        return 1
    remote = bool(config.get("remote"))
    if hook_inbox.key_of(hook_inbox.configuration(remote=remote)) != inbox.key:
        logger.error(
            "hook inbox %s belongs to another configuration than this worker's environment",
            inbox.directory,
        )
        os.close(lock)
        return 1
    claim(lock)
    inbox.remove_stale_temporaries()
    report = drain(inbox, lock, remote=remote)
    return 1 if report.problem else 0


def _record_stdin(arrived_ns: int, *, remote: bool) -> int:
    """The foreground path: one payload, recorded now; problems on stderr too."""
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
    try:
        payload = json.loads(sys.stdin.buffer.read())
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        logger.error("hook input is not a JSON object: %s", error)
        return 1
    try:
        producer = open_hook_producer(remote or None)
        try:
            outcome = record_payload(producer, payload, arrived_ns, lock_timeout=2.0)
        finally:
            producer.close(5.0)
    except Exception as error:
        logger.error("hook %s not recorded: %s", payload.get("hook_event_name"), describe(error))
        return 1
    if outcome.skipped:
        logger.info("hook %s: nothing imported: %s", outcome.event, outcome.skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
