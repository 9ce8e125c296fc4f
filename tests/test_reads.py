"""Reads open no transaction on PostgreSQL, and leave none of their setting to the next writer
(on SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from jobs import queries, task_stats
from jobs.db import reading
from jobs.models import state, utcnow


def _in_transaction(conn) -> bool:
    """What the driver says of the connection (not SQLAlchemy's own bookkeeping)."""
    driver = conn.connection.dbapi_connection
    if conn.dialect.name == "sqlite":
        return driver.in_transaction
    import psycopg
    return driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def test_a_read_opens_no_transaction_and_the_next_writer_gets_one(db):
    db.dispose()  # the pool's one connection from here on: the writer gets the reader's
    with reading(db) as conn:
        assert conn.execute(select(func.count()).select_from(state)).scalar_one() == 1
        queries.queue_summary(conn, now=utcnow())  # several reads on the one connection
        task_stats.window_stats(conn, "1h")
        assert not _in_transaction(conn)  # on PostgreSQL: no BEGIN was sent
        driver = conn.connection.dbapi_connection
    with pytest.raises(RuntimeError), db.begin() as conn:  # the same connection, from the pool
        assert conn.connection.dbapi_connection is driver
        conn.execute(insert(state).values(key="half-written", value={}, updated_at=utcnow()))
        assert _in_transaction(conn)
        raise RuntimeError("the writer fails half-way")
    with reading(db) as conn:  # so its insert was rolled back, not committed on its own
        assert conn.execute(select(state.c.key).where(state.c.key == "half-written")).first() is None


def test_a_read_passed_a_connection_uses_it_as_it_is(db):
    with db.begin() as conn:
        conn.execute(insert(state).values(key="in-flight", value={}, updated_at=utcnow()))
        with reading(conn) as same:  # a caller's transaction: its writes are seen, and kept open
            assert same is conn
            assert same.execute(select(state.c.key).where(state.c.key == "in-flight")).first()
        assert _in_transaction(conn)
