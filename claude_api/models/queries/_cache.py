"""Answers kept while the data they were computed from is unchanged.

A cached query function reads the data version (`claude_api.models.data_version`) in its
session's transaction and keeps its answer under (arguments, version), per engine, in a
least-recently-used cache: asked again before any write, it answers without computing, and the
first write anywhere (this process or another) makes every kept answer unreachable. Answers are
frozen dataclasses, shared between callers.

Not cached: answers that depend on the current time (a history without `until`, a report
without `on`, unless `now` is given), answers inside `reading_raw_rows`, and everything inside
`computing_afresh` (benchmarks measure the computation).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from cachetools import LRUCache
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claude_api.models import data_version
from claude_api.models.queries._pieces import raw_only

ANSWERS_PER_DATABASE = 256

P = ParamSpec("P")
R = TypeVar("R")

_FRESH: ContextVar[bool] = ContextVar("computing_afresh", default=False)
_LOCK = threading.Lock()
_ANSWERS: WeakKeyDictionary[Engine, LRUCache[Any, Any]] = WeakKeyDictionary()


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
                return function(*args, **kwargs)
            version = data_version.current(session)
            try:
                key = (function.__qualname__, version, *sorted(kwargs.items()))
                hash(key)
            except TypeError:  # an argument that cannot be a key: compute
                return function(*args, **kwargs)
            bind = session.get_bind()
            engine = bind if isinstance(bind, Engine) else bind.engine
            if version is not None:
                with _LOCK:
                    answers = _ANSWERS.get(engine)
                    if answers is not None and key in answers:
                        return answers[key]
            computed = function(*args, **kwargs)
            if version is not None:
                with _LOCK:
                    _ANSWERS.setdefault(engine, LRUCache(ANSWERS_PER_DATABASE))[key] = computed
            return computed

        return answer

    return decorate
