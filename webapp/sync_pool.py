"""The pool that writes small batches while the request waits.

Their model calls can take seconds; on the default executor they would hold the threads that
sign-in, pages and every other `asyncio.to_thread` call need. Here they get a bounded pool
of their own and a deadline; when every slot is busy the caller queues the work as a task
instead of waiting for one.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class PoolFull(Exception):
    pass


class SyncPool:
    def __init__(self, workers: int, timeout: float) -> None:
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="sync-generation")
        # Counts running calls, not waiting requests: a call that outlives its deadline
        # still holds its slot until it returns.
        self._slots = threading.BoundedSemaphore(workers)

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """fn's result; PoolFull at capacity; TimeoutError past the deadline."""
        if not self._slots.acquire(blocking=False):
            raise PoolFull()
        try:
            future = self._executor.submit(self._call, fn, args, kwargs)
        except BaseException:
            self._slots.release()
            raise
        return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)

    def _call(self, fn, args, kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            self._slots.release()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
