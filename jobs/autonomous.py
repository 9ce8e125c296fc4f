"""Autonomous operations: when on, the scheduler queues the daily operations every day."""
from __future__ import annotations

from sqlalchemy import Connection, Engine

from jobs import queries, shared_state
from jobs.db import reading
from jobs.models import iso, now_iso

KEY = "autonomous"
OFF = {"enabled": False}


def set_enabled(db: Engine, enabled: bool, by: str) -> dict:
    def decide(value: dict) -> dict:
        if bool(value.get("enabled")) == enabled:
            return value
        return {**value, "enabled": enabled, "since": now_iso(), "changed_by": by}

    before, after = shared_state.change(db, KEY, OFF, decide)
    return {**after, "changed": after != before}


def status(db: Engine | Connection, value: dict | None = None) -> dict:
    """Whether autonomous operations are on, and the last daily operations; `value`: the
    state under KEY when the caller has read it already (with others, in one statement)."""
    with reading(db) as conn:
        if value is None:
            value = shared_state.read(conn, KEY, OFF)
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
