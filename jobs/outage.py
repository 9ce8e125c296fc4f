"""Whether Redis (and the database) answer, as this process sees it.

An outage is logged once when it starts and once when it ends, however many calls fail in
between (a worker's loops would otherwise log hundreds of tracebacks for a 10-second
outage). Health reads the same state to say `degraded` and why.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger("jobs.outage")

# What an unreachable Redis looks like through redis-py (OSError: a socket torn down under
# it). A refused command (ResponseError) is a bug to surface, not an outage.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)


class Outage:
    def __init__(self, what: str, consequence: str) -> None:
        self.what = what
        self.consequence = consequence  # what users meet meanwhile, for the log line
        self._lock = threading.Lock()
        self.since: float | None = None  # wall-clock start of the current outage
        self.reason: str | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.time()
            self.reason = f"{type(exc).__name__}: {exc}"
        log.warning("%s unreachable (%s); %s", self.what, self.reason, self.consequence)

    def succeeded(self) -> None:
        if self.since is None:  # the common case: no lock
            return
        with self._lock:
            if self.since is None:
                return
            lasted, self.since, self.reason = time.time() - self.since, None, None
        log.warning("%s reachable again after %.1fs", self.what, lasted)

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Record the outcome of the Redis calls inside; errors still propagate."""
        try:
            yield
        except REDIS_ERRORS as exc:
            self.failed(exc)
            raise
        self.succeeded()

    def describe(self) -> str | None:
        since = self.since
        if since is None:
            return None
        return f"{self.what} unreachable for {time.time() - since:.0f}s ({self.reason})"


redis_outage = Outage("Redis", "tasks cannot be queued until it is back")
database_outage = Outage("database",
                         "pages and the API answer 503 database_unavailable until it is back")


def database_unreachable(exc: BaseException) -> bool:
    """A database connection that could not be made or was lost, not a statement the database
    refused. PostgreSQL's driver says so with its OperationalError (psycopg raises it for
    connection failures; refused statements are ProgrammingError, IntegrityError and the
    like); SQLite's OperationalError also means a refused statement, so there only a lost
    connection counts."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and type(exc.orig).__module__.startswith("psycopg")


class QuietOutageErrors(logging.Filter):
    """Turns the tracebacks of calls that met a lost Redis or database (Huey's per attempt,
    background loops' per pass) into the one outage line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, REDIS_ERRORS):
            redis_outage.failed(exc)
            return False
        if exc is not None and database_unreachable(exc):
            database_outage.failed(exc)
            return False
        return True
