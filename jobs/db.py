"""The SQL engine. Blocking by design: workers call it directly, the web hands calls to a thread."""
from __future__ import annotations

import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from jobs.models import metadata


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the web read while workers write; busy_timeout turns lock contention
    # between processes into a short wait instead of an error.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    _create_tables(engine)
    return engine


def _create_tables(engine: Engine) -> None:
    # Web servers and workers start together and race to create the tables; the loser's
    # "already exists" is harmless, and a second look finds everything in place.
    for attempt in range(5):
        try:
            metadata.create_all(engine)
            return
        except DBAPIError:
            if attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))
