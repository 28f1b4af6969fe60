"""Answers kept while the data they were computed from is unchanged.

A cached query function reads the data version (`claude_api.models.data_version`) in its
session's transaction and keeps its answer under (arguments, version), per engine, in a
least-recently-used cache: asked again before any write, it answers without computing, and the
first write anywhere (this process or another) makes every kept answer unreachable. Answers are
frozen dataclasses, shared between callers.

Not cached: answers that depend on the current time (a history without `until`, a report
without `on`, unless `now` is given), answers inside `reading_raw_rows`, and everything inside
`computing_afresh` (benchmarks measure the computation).

Beside the answers, the encoded responses made from them (`keep_response`): a `recording`
around one response's computation tells whether every answer in it was a kept one, and the data
version they were all read under.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from cachetools import LRUCache
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claude_api.models import data_version
from claude_api.models.queries._pieces import raw_only

ANSWERS_PER_DATABASE = 256
RESPONSE_BYTES_PER_DATABASE = 32 * 2**20

P = ParamSpec("P")
R = TypeVar("R")

_FRESH: ContextVar[bool] = ContextVar("computing_afresh", default=False)
_LOCK = threading.Lock()
_ANSWERS: WeakKeyDictionary[Engine, LRUCache[Any, Any]] = WeakKeyDictionary()
_RESPONSES: WeakKeyDictionary[Engine, LRUCache[Hashable, bytes]] = WeakKeyDictionary()


@dataclass(eq=False)
class Record:
    """What the answers of one response were: the data versions they were read under, and
    whether every one of them was a kept answer (not one that reads the clock, say)."""

    versions: set[int] = field(default_factory=set)
    all_kept: bool = True

    @property
    def version(self) -> int | None:
        """The one data version every answer was read under, if each was a kept answer; None
        otherwise, and when there was no answer at all: the response must not be kept."""
        if not self.all_kept or len(self.versions) != 1:
            return None
        return next(iter(self.versions))


_RECORD: ContextVar[Record | None] = ContextVar("answer_record", default=None)


@contextmanager
def recording() -> Iterator[Record]:
    """Record the answers given within this block (worker threads that copy the context
    included) into the record it yields."""
    record = Record()
    token = _RECORD.set(record)
    try:
        yield record
    finally:
        _RECORD.reset(token)


def mark_unkept() -> None:
    """Note that the response being recorded holds something that is not a kept answer."""
    record = _RECORD.get()
    if record is not None:
        record.all_kept = False


def keeps_answers(function: Callable[..., Any]) -> bool:
    """Whether `function` is a query function that keeps its answers."""
    return getattr(function, "keeps_answers", False)


@contextmanager
def computing_afresh() -> Iterator[None]:
    """Within this block every query computes its answer, and keeps none."""
    token = _FRESH.set(True)
    try:
        yield
    finally:
        _FRESH.reset(token)


def cached(
    reads_clock: Callable[[dict[str, Any]], bool] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Keep the answers of a query function `(session, **arguments)`; `reads_clock(arguments)`
    tells the calls whose answer depends on the current time, which are computed every time."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @wraps(function)
        def answer(*args: P.args, **kwargs: P.kwargs) -> R:
            session = args[0]
            assert isinstance(session, Session) and len(args) == 1
            if _FRESH.get() or raw_only() or (reads_clock and reads_clock(kwargs)):
                mark_unkept()
                return function(*args, **kwargs)
            version = data_version.current(session)
            try:
                key = (function.__qualname__, version, *sorted(kwargs.items()))
                hash(key)
            except TypeError:  # an argument that cannot be a key: compute
                mark_unkept()
                return function(*args, **kwargs)
            if version is None:
                mark_unkept()
                return function(*args, **kwargs)
            record = _RECORD.get()
            if record is not None:
                record.versions.add(version)
            bind = session.get_bind()
            engine = bind if isinstance(bind, Engine) else bind.engine
            with _LOCK:
                answers = _ANSWERS.get(engine)
                if answers is not None and key in answers:
                    return answers[key]
            computed = function(*args, **kwargs)
            with _LOCK:
                _ANSWERS.setdefault(engine, LRUCache(ANSWERS_PER_DATABASE))[key] = computed
            return computed

        answer.keeps_answers = True  # type: ignore[attr-defined]
        return answer

    return decorate


def kept_response(engine: Engine, key: Hashable, version: int) -> bytes | None:
    """The response kept under `key` for data version `version`, if any."""
    with _LOCK:
        responses = _RESPONSES.get(engine)
        return None if responses is None else responses.get((version, key))


def keep_response(engine: Engine, key: Hashable, body: bytes, record: Record) -> bool:
    """Keep `body` under `key` and the version of `record`'s answers, if it names one (see
    `Record.version`); returns whether it did. The largest responses are not kept."""
    version = record.version
    if version is None or len(body) > RESPONSE_BYTES_PER_DATABASE // 16:
        return False
    with _LOCK:
        responses = _RESPONSES.get(engine)
        if responses is None:
            responses = _RESPONSES[engine] = LRUCache(RESPONSE_BYTES_PER_DATABASE, getsizeof=len)
        responses[(version, key)] = body
    return True
