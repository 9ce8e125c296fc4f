"""Small values every process shares (the queue's pauses, autonomous operations), kept
in the `state` table under a key each.

A change is a read, a decision and a write. Two of them at once (two managers, two web
processes, a retried request) must not both read the old value: PostgreSQL would let
both delete-and-insert and refuse the second with a duplicate key, and both would report
that they made the change. So `change` first writes (the row is made if missing, which
takes SQLite's write lock), then reads the row locked (PostgreSQL's row lock), and the
second change waits for the first and decides on what it wrote.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, select, update

from jobs.db import insert_if_missing
from jobs.models import state, utcnow


def read(conn: Connection, key: str, default: dict) -> dict:
    return read_many(conn, {key: default})[key]


def read_many(conn: Connection, defaults: dict[str, dict]) -> dict[str, dict]:
    """{key: its value, or the default given for it}, read in one statement."""
    found = dict(conn.execute(select(state.c.key, state.c.value)
                              .where(state.c.key.in_(list(defaults)))).all())
    return {key: dict(found.get(key, default)) for key, default in defaults.items()}


def change(db: Engine, key: str, default: dict,
           decide: Callable[[dict], dict]) -> tuple[dict, dict]:
    """Apply `decide` to the value in force, one change at a time across every process;
    (value before, value after)."""
    with db.begin() as conn:
        insert_if_missing(conn, state, [state.c.key], key=key, value=default, updated_at=utcnow())
        row = conn.execute(select(state.c.value).where(state.c.key == key)
                           .with_for_update()).first()
        before = dict(row[0])
        after = decide(dict(before))
        if after != before:
            conn.execute(update(state).where(state.c.key == key)
                         .values(value=after, updated_at=utcnow()))
    return before, after
