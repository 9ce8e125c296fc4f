"""Fixed-window rate limits, shared through Redis when there is one."""
from __future__ import annotations

import asyncio
import threading
import time

import redis


class RateLimiter:
    def __init__(self, redis_client: redis.Redis | None) -> None:
        self._redis = redis_client
        self._local: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    async def hit(self, key: str, limit: int, window: float) -> float | None:
        """Count one event; None if within `limit` per `window` seconds, else seconds to wait."""
        return await asyncio.to_thread(self._hit, key, limit, window)

    def _hit(self, key: str, limit: int, window: float) -> float | None:
        now = time.time()
        start = now - now % window
        if self._redis is not None:
            name = f"bma:limit:{key}:{int(start)}"
            count, _ = self._redis.pipeline().incr(name).expire(name, int(window) + 1).execute()
        else:
            with self._lock:
                began, count = self._local.get(key, (start, 0))
                count = count + 1 if began == start else 1
                self._local[key] = (start, count)
                if len(self._local) > 10_000:  # forget old windows
                    self._local = {k: v for k, v in self._local.items() if v[0] == start}
        return None if count <= limit else max(start + window - now, 1.0)
