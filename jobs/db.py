"""The SQL engine. Blocking by design: workers call it directly, the web hands calls to a thread."""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from sqlalchemy import Column, Connection, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateColumn

from jobs import sqlite_turns
from jobs.models import metadata
from jobs.outage import database_outage

log = logging.getLogger("jobs.db")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the web read while workers write; busy_timeout turns lock contention
    # between processes into a short wait instead of an error.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def read_connection(db: Engine) -> Connection:
    """A connection of `db` for reads only. On PostgreSQL it opens no transaction: a lone
    read inside one costs four round trips (the pool's ping, BEGIN, the query, ROLLBACK)
    where two do, and at READ COMMITTED each statement reads its own snapshot either way.
    Never for writes: each statement would commit on its own. (SQLite's driver begins no
    transaction for reads: nothing to gain there.)"""
    conn = db.connect()
    if conn.dialect.name != "sqlite":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


@contextlib.contextmanager
def reading(db: Engine | Connection) -> Iterator[Connection]:
    """`read_connection(db)` for the block, or `db` itself when it is a connection: a caller
    making several reads in a row (the health report) passes its own."""
    if isinstance(db, Connection):
        yield db
    else:
        with read_connection(db) as conn:
            yield conn


def insert_if_missing(conn: Connection, table: Table, unique: list[Column], /, **values) -> None:
    """INSERT the row unless one with the same `unique` columns exists: two processes making
    the same row at once both succeed, where a read-then-insert has the second fail on the
    key."""
    if conn.dialect.name == "postgresql":
        # Imported here: each dialect's module is loaded only where it is the one in use
        # (PostgreSQL's costs a process about 20 ms of CPU at start-up).
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=unique))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # A connection per thread that may use one (the web's 32 blocking threads, its
        # generation pool and background threads): with the default 5 + 10, a write waiting
        # out a worker's lock (busy_timeout) held a connection, and under load every read,
        # token checks included, queued for one. SQLite connections are cheap (WAL: reads
        # go on while a write waits), and each is opened only when first needed.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10,
                                                  "factory": sqlite_turns.Connection},
                               pool_size=48, max_overflow=16)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    # A connection handed out (PostgreSQL's pinged first) ends an outage this process saw.
    event.listen(engine, "checkout", lambda *_: database_outage.succeeded())
    _create_tables(engine)
    from jobs import task_stats  # here: it reads through this module (`reading`)
    task_stats.count_existing_once(engine)
    return engine


def _create_tables(engine: Engine) -> None:
    # Web servers and workers start together and race to create the tables; the loser's
    # "already exists" is harmless, and a second look finds everything in place.
    for attempt in range(5):
        try:
            metadata.create_all(engine)
            _upgrade(engine)
            return
        except DBAPIError:
            if attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))


def _upgrade(engine: Engine) -> None:
    """Bring a database made by an earlier version up to the current tables.

    `create_all` makes missing tables only. Changes between versions are additive: new
    columns (nullable, or with a server default) and new indexes, so adding what is missing
    is the whole upgrade.
    """
    existing = inspect(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            have = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                ddl = CreateColumn(column).compile(dialect=engine.dialect)
                log.warning("upgrading the database: adding column %s.%s", table.name, column.name)
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
        for table in metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
