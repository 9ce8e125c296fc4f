"""One clock for liveness across machines.

Heartbeats and the decision that a worker is lost compare times written by different
machines; each machine's own clock may be off by seconds. In Redis mode every process
reads Redis's `TIME` (once in a while: the offset from the local clock is kept), so all
of them share one clock. Embedded mode is one process: its own clock is the one clock.
"""
from __future__ import annotations

import datetime as dt
import time

import redis

from jobs.models import utcnow
from jobs.outage import REDIS_ERRORS

REFRESH = 30.0  # seconds between two readings of Redis's clock


class Clock:
    def __init__(self, client: redis.Redis | None) -> None:
        self._client = client
        self._offset = dt.timedelta(0)
        self._next_read = 0.0

    def now(self) -> dt.datetime:
        if self._client is not None and time.monotonic() >= self._next_read:
            before = utcnow()
            try:
                seconds, micros = self._client.time()
            except REDIS_ERRORS:
                self._next_read = time.monotonic() + 1.0  # keep the last offset meanwhile
            else:
                shared = dt.datetime.fromtimestamp(seconds + micros / 1e6, dt.UTC)
                self._offset = shared - (before + (utcnow() - before) / 2)
                self._next_read = time.monotonic() + REFRESH
        return utcnow() + self._offset
