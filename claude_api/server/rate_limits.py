"""Rate limits per caller: each API key (without keys: each client address) has a token bucket per
rate (`CLAUDE_API_RATE_LIMIT`); a request finding one empty gets 429 with `Retry-After`, before
anything reads its body or the database.

Token buckets kept here rather than the `limits` library: for two rates its in-memory storage
cost ten times as much per request as these (measured side by side: a key string built per rate,
a lock per hit, an expiry thread started every 10 ms), about a tenth of a kept response's answer.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from claude_api.config import Rate
from claude_api.models.keys import hash_key
from claude_api.server.auth import GRAPHQL_PATH, AuthPolicy, KeyVerifier, route_path
from claude_api.server.responses import refusal

TOO_MANY = HTTPStatus.TOO_MANY_REQUESTS
KEY, CLIENT = "key", "client"  # the kinds of caller a request is counted against
MAX_CALLERS = 100_000  # beyond, the callers seen least recently are forgotten (full buckets)


class TokenBuckets:
    """A bucket per caller and rate: it holds up to `rate.count` tokens, refills at
    `rate.count / rate.seconds` tokens a second, and each request takes one from every bucket
    of each of its callers."""

    def __init__(
        self,
        rates: Sequence[Rate],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = MAX_CALLERS,
    ) -> None:
        self.rates = tuple(rates)
        self.clock = clock
        self.max_callers = max_callers
        self._shape = [(float(rate.count), rate.count / rate.seconds) for rate in self.rates]
        # caller -> [when its levels were last computed, level per rate...]; least recent first
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()

    def take(self, *callers: Hashable) -> tuple[float, Hashable | None]:
        """(0, None) when every bucket of `callers` had a token (one is taken from each); else
        the seconds until they all will and the caller that waits longest, and nothing is
        taken."""
        now = self.clock()
        entries = [(caller, self._refilled(caller, now)) for caller in callers]
        wait, waiting = 0.0, None
        for caller, entry in entries:
            for index, (_, per_second) in enumerate(self._shape, start=1):
                if entry[index] < 1 and (1 - entry[index]) / per_second > wait:
                    wait, waiting = (1 - entry[index]) / per_second, caller
        if waiting is None:
            for _, entry in entries:
                for index in range(1, len(entry)):
                    entry[index] -= 1
        return wait, waiting

    def _refilled(self, caller: Hashable, now: float) -> list[float]:
        """The caller's entry, its levels refilled up to `now`."""
        entry = self._buckets.get(caller)
        if entry is None:
            if len(self._buckets) >= self.max_callers:
                self._buckets.popitem(last=False)  # idle longest: its buckets refill anyway
            entry = [now, *(capacity for capacity, _ in self._shape)]
            self._buckets[caller] = entry
            return entry
        elapsed = now - entry[0]
        entry[0] = now
        for index, (capacity, per_second) in enumerate(self._shape, start=1):
            entry[index] = min(capacity, entry[index] + elapsed * per_second)
        self._buckets.move_to_end(caller)
        return entry


class RateLimitMiddleware:
    """ASGI middleware: 429 with `Retry-After` for a caller over its rates.

    The caller is the API key presented when `policy` needs one, else the client address. A key
    the server has not verified lately (one it does not hold in its verifier's cache) is also
    counted against the client address: so invented keys, each of which costs a lookup, do not
    escape the limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rates: Sequence[Rate],
        policy: AuthPolicy,
        graphql_path: str = GRAPHQL_PATH,
    ) -> None:
        self.app = app
        self.buckets = TokenBuckets(rates)
        self.policy = policy
        self.graphql_path = graphql_path
        self.described = ";".join(str(rate) for rate in rates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wait, waiting = self.buckets.take(*self.callers(scope))
        if waiting is None:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        who = "API key" if isinstance(waiting, tuple) and waiting[0] == KEY else "client address"
        message = (
            f"too many requests from this {who}: at most {self.described} "
            f"(CLAUDE_API_RATE_LIMIT); try again in {retry_after} s"
        )
        graphql = route_path(scope) == self.graphql_path
        headers = {"Retry-After": str(retry_after)}
        response = refusal(graphql, TOO_MANY, message, code=TOO_MANY.name, headers=headers)
        await response(scope, receive, send)

    def callers(self, scope: Scope) -> list[tuple[str, str | None]]:
        """What the request is counted against: its key, its client address, or both."""
        client = scope.get("client")
        address = (CLIENT, client[0] if client else None)
        if not self.policy.required(scope):
            return [address]
        scheme, _, key = (Headers(scope=scope).get("authorization") or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return [address]
        counted = (KEY, hash_key(key))  # the secret itself is kept nowhere
        verifier: KeyVerifier = scope["app"].state.services.key_verifier
        return [counted] if verifier.cached(key) is not None else [counted, address]


def rate_limit_middleware(rates: Sequence[Rate], policy: AuthPolicy) -> list[Middleware]:
    """The rate limit middleware for `rates`; none when there are none (limits off)."""
    return [Middleware(RateLimitMiddleware, rates=rates, policy=policy)] if rates else []
