"""Autonomous operations: when on, the scheduler queues the daily operations every day."""
from __future__ import annotations

from sqlalchemy import Engine, select

from jobs import queries
from jobs.models import iso, now_iso, state, utcnow

KEY = "autonomous"


def _read(conn) -> dict:
    row = conn.execute(select(state.c.value).where(state.c.key == KEY)).first()
    return dict(row[0]) if row else {"enabled": False}


def set_enabled(db: Engine, enabled: bool, by: str) -> dict:
    with db.begin() as conn:
        current = _read(conn)
        changed = current.get("enabled") != enabled
        value = {**current, "enabled": enabled}
        if changed:
            value["since"] = now_iso()
            value["changed_by"] = by
        conn.execute(state.delete().where(state.c.key == KEY))
        conn.execute(state.insert().values(key=KEY, value=value, updated_at=utcnow()))
    return {**value, "changed": changed}


def status(db: Engine) -> dict:
    with db.connect() as conn:
        value = _read(conn)
        last = queries.latest_of_type(conn, "daily_operations")
    return {
        "enabled": bool(value.get("enabled")),
        "since": value.get("since"),
        "changed_by": value.get("changed_by"),
        "last_daily_operations": None if last is None else {
            "task_id": last.id, "status": last.status,
            "enqueued_at": iso(last.enqueued_at),
        },
    }
