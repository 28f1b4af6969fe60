"""Answers kept while the data they were computed from is unchanged.

A cached query function reads the data version (`claude_api.models.data_version`) in its
session's transaction and keeps its answer under (arguments, version), per engine, in a
least-recently-used cache: asked again before any write, it answers without computing, and the
first write anywhere (this process or another) makes every kept answer unreachable. Answers are
frozen: dataclasses, and a list answer is kept as a tuple and handed out as a new list, so no
caller can change what another is given.

Not cached: answers that depend on the current time (a history without `until`, a report
without `on`, unless `now` is given), answers inside `reading_raw_rows`, and everything inside
`computing_afresh` (benchmarks measure the computation). Inside `computing_again`, answers are
computed as after a write and kept (the server's warm-up of the dashboard).

Answers over a range that ended two days ago (`cached(settles=True)`: a previous period
compared against) and the parts of answers over settled buckets (`kept_while_settled`) are
kept under the settled token instead, which writes of recent invocations leave alone: a live
page computes again only its last two days.

A `recording` around the answers of one response tells the data version they were all read
under, if each was a cached answer: what the HTTP edge's ETag is made from
(`claude_api.models.gateway` is the public face of this module).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
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
from claude_api.models.queries._range_split import raw_only

# The server's warm-up of the dashboard keeps about 75 answers (350 KiB pickled at 10^6 demo
# events) and 40 parts (650 KiB) per time zone it prepares, and browsers ask for more.
ANSWERS_PER_DATABASE = 512
# A part is a leaderboard's duration bins or failure counts, or a history's buckets: from 16 to
# 111 KiB each over 90 days of a million demo events.
SETTLED_PARTS_PER_DATABASE = 256

P = ParamSpec("P")
R = TypeVar("R")

_FRESH: ContextVar[bool] = ContextVar("computing_afresh", default=False)
_AGAIN: ContextVar[bool] = ContextVar("computing_again", default=False)
_LOCK = threading.Lock()
_ANSWERS: WeakKeyDictionary[Engine, LRUCache[Any, Any]] = WeakKeyDictionary()
_SETTLED_PARTS: WeakKeyDictionary[Engine, LRUCache[Any, Any]] = WeakKeyDictionary()


@dataclass(eq=False)
class Record:
    """What the answers of one response were: the data versions they were read under, and
    whether every one of them was a cached answer (not one that reads the clock, say)."""

    versions: set[int] = field(default_factory=set)
    all_cached: bool = True

    @property
    def version(self) -> int | None:
        """The one data version every answer was read under, if each was a cached answer; None
        otherwise, and when there was no answer at all: the response depends on more than the
        data and the request."""
        if not self.all_cached or len(self.versions) != 1:
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


def mark_uncacheable() -> None:
    """Note that the response being recorded holds something that is not a cached answer."""
    record = _RECORD.get()
    if record is not None:
        record.all_cached = False


def caches_answers(function: Callable[..., Any]) -> bool:
    """Whether `function` is a query function that caches its answers."""
    return getattr(function, "caches_answers", False)


@contextmanager
def computing_again() -> Iterator[None]:
    """Within this block every query computes its answer as after a write (the kept parts of
    settled buckets serve, kept answers do not) and keeps it."""
    token = _AGAIN.set(True)
    try:
        yield
    finally:
        _AGAIN.reset(token)


@contextmanager
def computing_afresh() -> Iterator[None]:
    """Within this block every query computes its answer, and keeps none."""
    token = _FRESH.set(True)
    try:
        yield
    finally:
        _FRESH.reset(token)


def cached(
    reads_clock: Callable[[dict[str, Any]], bool] | None = None, *, settles: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Keep the answers of a query function `(session, **arguments)`; `reads_clock(arguments)`
    tells the calls whose answer depends on the current time, which are computed every time.
    `settles`: the answer depends on nothing but the invocations that started in its `filter`'s
    range, so one whose range ended `data_version.SETTLED_AFTER` ago is kept under the settled
    token, across the writes of recent invocations (a period compared against, say)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @wraps(function)
        def answer(*args: P.args, **kwargs: P.kwargs) -> R:
            session = args[0]
            assert isinstance(session, Session) and len(args) == 1
            if _FRESH.get() or raw_only() or (reads_clock and reads_clock(kwargs)):
                mark_uncacheable()
                return function(*args, **kwargs)
            version = data_version.current(session)
            token = data_version.settled(session) if settles and _settled(kwargs) else None
            try:
                under = version if token is None else ("settled", token)
                key = (function.__qualname__, under, *sorted(kwargs.items()))
                hash(key)
            except TypeError:  # an argument that cannot be a key: compute
                mark_uncacheable()
                return function(*args, **kwargs)
            if version is None:
                mark_uncacheable()
                return function(*args, **kwargs)
            record = _RECORD.get()
            if record is not None:
                record.versions.add(version)
            engine = _engine(session)
            with _LOCK:
                answers = _ANSWERS.get(engine)
                if answers is not None and key in answers and not _AGAIN.get():
                    return _handed_out(answers[key])
            kept = _frozen(function(*args, **kwargs))
            with _LOCK:
                _ANSWERS.setdefault(engine, LRUCache(ANSWERS_PER_DATABASE))[key] = kept
            return _handed_out(kept)

        answer.caches_answers = True  # type: ignore[attr-defined]
        return answer

    return decorate


def _settled(arguments: dict[str, Any]) -> bool:
    """Whether the range of the `filter` among `arguments` ended `SETTLED_AFTER` ago; not for a
    name of either kind, whose answer tells the kinds it was ever recorded under."""
    filter = arguments.get("filter")
    return (
        filter is not None
        and filter.until is not None
        and filter.until <= data_version.settled_before()
        and (filter.name is None or filter.kind is not None)
    )


def kept_while_settled(
    session: Session, key: tuple[Any, ...], compute: Callable[[], tuple[Any, ...]]
) -> tuple[Any, ...] | None:
    """`compute()`, a part of an answer read from rollup buckets that ended before
    `data_version.SETTLED_AFTER` ago, kept under `key` and the settled token the session sees;
    None, computing nothing, when no part may be kept (computing afresh, or before the first
    write): the caller then reads the whole answer at once."""
    if _FRESH.get():
        return None
    token = data_version.settled(session)
    if token is None:
        return None
    key = (token, *key)
    engine = _engine(session)
    with _LOCK:
        parts = _SETTLED_PARTS.get(engine)
        if parts is not None and key in parts:
            return parts[key]
    part = compute()
    with _LOCK:
        _SETTLED_PARTS.setdefault(engine, LRUCache(SETTLED_PARTS_PER_DATABASE))[key] = part
    return part


def settled_buckets(buckets: Sequence[Any]) -> int:
    """How many of `buckets` (in time order, each with its `end_at`) ended
    `data_version.SETTLED_AFTER` ago or earlier: the leading ones whose part of an answer
    `kept_while_settled` may keep."""
    return bisect_right([bucket.end_at for bucket in buckets], data_version.settled_before())


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


class _FrozenList(tuple[Any, ...]):
    """A list answer as it is kept: handed out as a list of its own to every caller."""


def _frozen(answer: Any) -> Any:
    return _FrozenList(answer) if isinstance(answer, list) else answer


def _handed_out(kept: Any) -> Any:
    return list(kept) if isinstance(kept, _FrozenList) else kept
