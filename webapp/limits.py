"""Fixed-window rate limits, shared through Redis when there is one.

A hit is counted before the work it guards, so concurrent requests cannot all slip under
the limit; work that turns out not to count (a successful sign-in) is handed back with
`forgive`. When Redis cannot be reached the limits hold per process until it returns.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

import redis

log = logging.getLogger("webapp.limits")


class RateLimiter:
    def __init__(self, redis_client: redis.Redis | None) -> None:
        self._redis = redis_client
        self._local: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._redis_failing = False

    async def hit(self, key: str, limit: int, window: float) -> float | None:
        """Count one event; None if within `limit` per `window` seconds, else seconds to wait."""
        return await asyncio.to_thread(self._count, key, window, 1, limit)

    async def forgive(self, key: str, window: float) -> None:
        """Take back one event counted by `hit` in the current window."""
        await asyncio.to_thread(self._count, key, window, -1, None)

    def _count(self, key: str, window: float, amount: int, limit: int | None) -> float | None:
        now = time.time()
        start = now - now % window
        count = self._count_shared(key, start, window, amount)
        if count is None:
            count = self._count_local(key, start, amount)
        if limit is None or count <= limit:
            return None
        return max(start + window - now, 1.0)

    def _count_shared(self, key: str, start: float, window: float, amount: int) -> int | None:
        if self._redis is None:
            return None
        name = f"bma:limit:{key}:{int(start)}"
        try:
            count, _ = self._redis.pipeline().incrby(name, amount).expire(name, int(window) + 1).execute()
        except redis.RedisError as exc:
            if not self._redis_failing:
                log.warning("rate limits are per process until Redis answers again: %s", exc)
            self._redis_failing = True
            return None
        if self._redis_failing:
            log.info("rate limits are shared through Redis again")
        self._redis_failing = False
        return count

    def _count_local(self, key: str, start: float, amount: int) -> int:
        with self._lock:
            began, count = self._local.get(key, (start, 0))
            count = max(count + amount if began == start else amount, 0)
            self._local[key] = (start, count)
            if len(self._local) > 10_000:  # forget old windows
                self._local = {k: v for k, v in self._local.items() if v[0] == start}
        return count
