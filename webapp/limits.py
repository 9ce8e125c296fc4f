"""Moving-window rate limits, shared through Redis when there is one.

At most `limit` attempts are counted in ANY `window` seconds for one key (a fixed window
lets twice the limit through around each of its boundaries). Each key is a Redis sorted
set of its counted attempts, scored by the time they were made; one Lua script drops the
ones older than the window, counts the rest and adds the new attempt only when there is
room. A refused attempt is not recorded, so hammering a key keeps it shut for no longer
than one window after the hammering stops. The script reads Redis's own clock (`TIME`),
so web hosts whose clocks disagree still count the same attempts.

A hit is counted before the work it guards, so concurrent requests cannot all slip under
the limit; work that turns out not to count (a successful sign-in) hands back exactly the
attempt it was counted as, by its ticket (a sorted-set member), and nothing else. When
Redis cannot be reached the limits hold per process until it returns.

Why not the `limits` package: its Redis moving window is a list of bare timestamps taken
from each web host's clock; it has no way to hand back one counted attempt (`forgive`),
and it would need its own Redis connection beside the one every process already keeps.
"""
from __future__ import annotations

import asyncio
import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import redis

log = logging.getLogger("webapp.limits")

PREFIX = "bma:limit:"

# KEYS[1]: the key's sorted set; ARGV: window (seconds), limit, the new attempt's ticket.
# Returns nil when the attempt was counted, else the seconds until a place frees (a string:
# Redis truncates a Lua number to an integer).
_HIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
    return false
end
-- Full: a place frees when the attempt that would leave `limit - 1` behind it ages out
-- (the oldest one, unless the limit was lowered since these were counted).
local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return tostring(tonumber(freeing[2]) + window - now)
"""


@dataclass(frozen=True)
class Hit:
    """One attempt put to a limit: counted (and can be handed back with `forgive`), or refused."""
    key: str
    ticket: str | None = None       # the counted attempt; None when refused
    retry_after: int | None = None  # refused: whole seconds until a place frees (at least 1)
    shared: bool = False            # counted in Redis, else in this process

    @property
    def refused(self) -> bool:
        return self.ticket is None


class RateLimiter:
    def __init__(self, redis_client: redis.Redis | None) -> None:
        self._redis = redis_client
        self._script = redis_client.register_script(_HIT) if redis_client is not None else None
        # The per-process fallback: key -> (window, its counted attempts as (monotonic time, ticket)).
        self._local: dict[str, tuple[float, deque[tuple[float, str]]]] = {}
        self._lock = threading.Lock()
        self._redis_failing = False

    async def hit(self, key: str, limit: int, window: float) -> Hit:
        """Count one attempt unless `limit` were already counted in the last `window` seconds."""
        return await asyncio.to_thread(self._hit, key, limit, window)

    async def hit_all(self, limits: Iterable[tuple[str, int]], window: float) -> list[Hit]:
        """One attempt against several keys, counted against all of them or none: when one
        refuses, the others hand theirs back (what is refused is never recorded)."""
        hits = [await self.hit(key, limit, window) for key, limit in limits]
        if any(h.refused for h in hits):
            await self.forgive(*hits)
        return hits

    async def forgive(self, *hits: Hit) -> None:
        """Take back exactly the attempts these hits counted (refused ones counted nothing)."""
        counted = [h for h in hits if not h.refused]
        if counted:
            await asyncio.to_thread(self._forgive, counted)

    def _hit(self, key: str, limit: int, window: float) -> Hit:
        ticket = secrets.token_hex(8)
        if self._script is not None:
            try:
                wait = self._script(keys=[PREFIX + key], args=[window, limit, ticket])
            except redis.RedisError as exc:
                self._failing(exc)
            else:
                self._answering()
                if wait is None:
                    return Hit(key, ticket, shared=True)
                return Hit(key, retry_after=_whole_seconds(float(wait)), shared=True)
        return self._hit_local(key, limit, window, ticket)

    def _forgive(self, hits: list[Hit]) -> None:
        shared = [h for h in hits if h.shared]
        if shared:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for h in shared:
                    pipe.zrem(PREFIX + h.key, h.ticket)
                pipe.execute()
            except redis.RedisError as exc:
                self._failing(exc)  # those attempts stay counted until they age out
            else:
                self._answering()
        with self._lock:
            for h in hits:
                if not h.shared and h.key in self._local:
                    entries = self._local[h.key][1]
                    self._local[h.key] = (self._local[h.key][0],
                                          deque(e for e in entries if e[1] != h.ticket))

    def _failing(self, exc: Exception) -> None:
        if not self._redis_failing:
            log.warning("rate limits are per process until Redis answers again: %s", exc)
        self._redis_failing = True

    def _answering(self) -> None:
        if self._redis_failing:
            log.info("rate limits are shared through Redis again")
        self._redis_failing = False

    def _hit_local(self, key: str, limit: int, window: float, ticket: str) -> Hit:
        now = time.monotonic()
        with self._lock:
            if len(self._local) > 10_000:  # forget keys whose every attempt has aged out
                self._local = {k: (w, e) for k, (w, e) in self._local.items() if e and e[-1][0] > now - w}
            _, entries = self._local.setdefault(key, (window, deque()))
            self._local[key] = (window, entries)
            while entries and entries[0][0] <= now - window:
                entries.popleft()
            if len(entries) < limit:
                entries.append((now, ticket))
                return Hit(key, ticket)
            freeing = entries[len(entries) - limit][0]
        return Hit(key, retry_after=_whole_seconds(freeing + window - now))


def _whole_seconds(wait: float) -> int:
    # Rounded up: a client that waits exactly this long finds a place.
    return max(math.ceil(wait), 1)
