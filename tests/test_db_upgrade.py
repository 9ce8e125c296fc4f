"""A database made by an earlier version is brought up to the current tables at start-up."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import create_engine, inspect, text

from jobs import workers as worker_states
from jobs.db import make_engine
from jobs.models import metadata, posts


def _made_by_an_earlier_version(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def _old_posts_table(url: str) -> None:
    """`posts` as an earlier version made it: no `approved_at`, no owner index, one row."""
    _made_by_an_earlier_version(
        url,
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, batch_id VARCHAR(64) NOT NULL, "
        "seq INTEGER NOT NULL, owner VARCHAR(200) NOT NULL, book_id INTEGER, "
        "platform VARCHAR(20) NOT NULL, text TEXT NOT NULL, length INTEGER NOT NULL, "
        "\"limit\" INTEGER NOT NULL, writer VARCHAR(40) NOT NULL, status VARCHAR(20) NOT NULL, "
        "created_at TIMESTAMP WITH TIME ZONE NOT NULL)",
        "INSERT INTO posts (id, batch_id, seq, owner, platform, text, length, \"limit\", "
        "writer, status, created_at) VALUES (1, 'b', 0, 'a', 'twitter', 'hello', 5, 280, "
        "'offline', 'draft', '2026-01-01 00:00:00+00:00')")


def _check_upgraded(url: str) -> None:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        assert "approved_at" in {c["name"] for c in found.get_columns("posts")}
        assert {i.name for i in posts.indexes} <= {i["name"] for i in found.get_indexes("posts")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT text FROM posts WHERE id = 1")).scalar_one() == "hello"
        make_engine(url).dispose()  # a second start finds nothing to do
    finally:
        engine.dispose()


def test_sqlite_database_of_an_earlier_version_is_upgraded(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _old_posts_table(url)
    _check_upgraded(url)


def test_postgres_database_of_an_earlier_version_is_upgraded(postgres_server):
    url = postgres_server.database("bma_upgrade")
    _old_posts_table(url)
    _check_upgraded(url)


def test_columns_added_to_existing_tables_can_be_added_to_a_table_with_rows():
    """A NOT NULL column added to a table of an earlier version needs a server default, or
    ALTER TABLE fails on a table with rows. New tables are created whole and are exempt."""
    for table in metadata.sorted_tables:
        if table.name not in {name for name, _ in _ORIGINAL_NOT_NULL}:
            continue
        for column in table.columns:
            assert column.primary_key or column.nullable or column.server_default is not None \
                or (table.name, column.name) in _ORIGINAL_NOT_NULL, \
                f"{table.name}.{column.name} is NOT NULL without a server_default"


# NOT NULL columns of the first released schema: every database has them already.
_ORIGINAL_NOT_NULL = {
    ('api_tokens', 'user_id'),
    ('api_tokens', 'name'),
    ('api_tokens', 'token_hash'),
    ('api_tokens', 'prefix'),
    ('api_tokens', 'created_at'),
    ('audit_log', 'at'),
    ('audit_log', 'actor'),
    ('audit_log', 'action'),
    ('books', 'owner'),
    ('books', 'title'),
    ('books', 'author'),
    ('books', 'genre'),
    ('books', 'blurb'),
    ('books', 'audience'),
    ('books', 'keywords'),
    ('books', 'link'),
    ('books', 'comparables'),
    ('books', 'tone'),
    ('books', 'created_at'),
    ('books', 'updated_at'),
    ('posts', 'batch_id'),
    ('posts', 'seq'),
    ('posts', 'owner'),
    ('posts', 'platform'),
    ('posts', 'text'),
    ('posts', 'length'),
    ('posts', 'limit'),
    ('posts', 'writer'),
    ('posts', 'status'),
    ('posts', 'created_at'),
    ('state', 'value'),
    ('state', 'updated_at'),
    ('task_history', 'task_id'),
    ('task_history', 'at'),
    ('task_history', 'status'),
    ('task_history', 'attempt'),
    ('tasks', 'type'),
    ('tasks', 'owner'),
    ('tasks', 'params'),
    ('tasks', 'status'),
    ('tasks', 'progress_done'),
    ('tasks', 'progress_total'),
    ('tasks', 'attempts'),
    ('tasks', 'max_attempts'),
    ('tasks', 'terminate'),
    ('tasks', 'enqueued_at'),
    ('tasks', 'updated_at'),
    ('users', 'email'),
    ('users', 'role'),
    ('users', 'disabled'),
    ('users', 'created_at'),
    ('workers', 'hostname'),
    ('workers', 'pid'),
    ('workers', 'kind'),
    ('workers', 'concurrency'),
    ('workers', 'running'),
    ('workers', 'started_at'),
    ('workers', 'last_seen'),
}


def _old_workers_table(url: str) -> None:
    """`workers` before drains were acknowledged: a drain asked of a worker, and a heartbeat
    stamped after the request."""
    _made_by_an_earlier_version(
        url,
        "CREATE TABLE workers (id VARCHAR(200) PRIMARY KEY, hostname VARCHAR(200) NOT NULL, "
        "pid INTEGER NOT NULL, kind VARCHAR(20) NOT NULL, concurrency INTEGER NOT NULL, "
        "running JSON NOT NULL, started_at DATETIME NOT NULL, last_seen DATETIME NOT NULL, "
        "stopped_at DATETIME, tasks_run INTEGER DEFAULT 0 NOT NULL, drain_requested_at DATETIME)",
        "INSERT INTO workers (id, hostname, pid, kind, concurrency, running, started_at, "
        "last_seen, drain_requested_at) VALUES ('h:1:a', 'h', 1, 'process', 1, '[]', "
        "'2026-01-01 00:00:00', '2026-01-01 00:00:01', '2026-01-01 00:00:00.5')")


def test_a_workers_table_of_an_earlier_version_gets_the_acknowledgement_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _old_workers_table(url)
    engine = make_engine(url)
    try:
        assert "drain_seen_at" in {c["name"] for c in inspect(engine).get_columns("workers")}
        # A drain its worker has not acknowledged: stopping, whatever the times say.
        seen = dt.datetime(2026, 1, 1, 0, 0, 2, tzinfo=dt.UTC)
        listed = worker_states.list_workers(engine, 10.0, now=seen)
        assert [w["state"] for w in listed] == ["stopping"]
    finally:
        engine.dispose()
