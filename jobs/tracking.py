"""Task records: the one place a task's state changes, and the event that tells everyone.

`transition()` is a compare-and-set: it changes a record only from the states (and, for a
worker, the attempt) the caller expects, so a late worker, a reaper and a revoke can race
without one overwriting the other. Every change it makes is published on the event bus.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from jobs import task_stats
from jobs.events import EventBus
from jobs.models import FAILURE, FINAL_STATUSES, PENDING, SUCCESS, task_history, tasks, utcnow

log = logging.getLogger("jobs.tracking")


def new_task_id() -> str:
    return secrets.token_hex(12)


def task_view(row: Mapping[str, Any], *, with_result: bool = True) -> dict[str, Any]:
    """A record as the API and the event stream show it."""
    view = {
        "task_id": row["id"],
        "type": row["type"],
        "owner": row["owner"],
        "status": row["status"],
        "progress": {"done": row["progress_done"], "total": row["progress_total"]},
        "error": row["error"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "worker": row["worker"],
        "terminate": row["terminate"],
        "parent_id": row["parent_id"],
        "params": row["params"],
        "enqueued_at": _iso(row["enqueued_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "updated_at": _iso(row["updated_at"]),
    }
    if with_result:
        view["result"] = row["result"]
    return view


def _detail(row: Mapping[str, Any]) -> str | None:
    if row["error"]:
        return f"{row['error'].get('type')}: {row['error'].get('message')}"[:500]
    if row["terminate"] and row["status"] == "REVOKED":
        return "terminate requested"
    return None


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class Tracker:
    def __init__(self, db: Engine, bus: EventBus) -> None:
        self.db = db
        self.bus = bus

    def create(self, *, task_type: str, owner: str, params: dict, max_attempts: int,
               task_id: str | None = None, parent_id: str | None = None) -> dict | None:
        """Record a new PENDING task. Returns None when `task_id` is already taken."""
        now = utcnow()
        values = dict(
            id=task_id or new_task_id(), type=task_type, owner=owner, params=params,
            status=PENDING, progress_done=0, progress_total=0, attempts=0,
            max_attempts=max_attempts, terminate=False, parent_id=parent_id,
            enqueued_at=now, updated_at=now,
        )
        try:
            with self.db.begin() as conn:
                conn.execute(insert(tasks).values(**values))
                conn.execute(insert(task_history).values(
                    task_id=values["id"], at=now, status=PENDING, attempt=0,
                    detail=f"retry of {parent_id}" if parent_id else None))
        except IntegrityError:
            if task_id is None:
                raise
            return None  # a chosen id (a periodic run) that another process recorded first
        row = {**values, "result": None, "error": None, "worker": None,
               "started_at": None, "finished_at": None}
        self._publish(row)
        return task_view(row)

    def transition(self, task_id: str, status: str, *, expect: Iterable[str],
                   attempt: int | None = None, **fields: Any) -> dict | None:
        """Move a task to `status` if it is in one of `expect` (and at `attempt`, if given).

        Returns the new record, or None when the record was not in an expected state.
        """
        stmt = update(tasks).where(tasks.c.id == task_id, tasks.c.status.in_(tuple(expect)))
        if attempt is not None:
            stmt = stmt.where(tasks.c.attempts == attempt)
        now = utcnow()
        stmt = stmt.values(status=status, updated_at=now, **fields).returning(*tasks.c)
        with self.db.begin() as conn:
            row = conn.execute(stmt).mappings().first()
            if row is None:
                return None
            if set(expect) != {status}:  # a change of state, not a progress report
                conn.execute(insert(task_history).values(
                    task_id=task_id, at=now, status=status, attempt=row["attempts"],
                    worker=row["worker"], detail=_detail(row)))
                if status in FINAL_STATUSES:
                    task_stats.record(conn, row)
        self._publish(row)
        self._log(row)
        return task_view(row)

    # -- many at once (bulk actions): one statement each, and still one event per change --
    def transition_many(self, task_ids: list[str], status: str, *, expect: Iterable[str],
                        **fields: Any) -> list[dict]:
        """Move every listed task that is in one of `expect` to `status`; the moved records."""
        if not task_ids:
            return []
        now = utcnow()
        stmt = (update(tasks).where(tasks.c.id.in_(task_ids), tasks.c.status.in_(tuple(expect)))
                .values(status=status, updated_at=now, **fields).returning(*tasks.c))
        with self.db.begin() as conn:
            rows = conn.execute(stmt).mappings().all()
            if rows:
                conn.execute(insert(task_history), [
                    dict(task_id=r["id"], at=now, status=status, attempt=r["attempts"],
                         worker=r["worker"], detail=_detail(r)) for r in rows])
        for row in rows:
            self._publish(row)
        return [task_view(r) for r in rows]

    def create_many(self, specs: list[dict], max_attempts: int) -> list[dict]:
        """Record new PENDING tasks, each spec {type, owner, params, parent_id}."""
        if not specs:
            return []
        now = utcnow()
        rows = [dict(id=new_task_id(), type=s["type"], owner=s["owner"], params=s["params"],
                     status=PENDING, progress_done=0, progress_total=0, attempts=0,
                     max_attempts=max_attempts, terminate=False, parent_id=s.get("parent_id"),
                     enqueued_at=now, updated_at=now) for s in specs]
        with self.db.begin() as conn:
            conn.execute(insert(tasks), rows)
            conn.execute(insert(task_history), [
                dict(task_id=r["id"], at=now, status=PENDING, attempt=0,
                     detail=f"retry of {r['parent_id']}" if r["parent_id"] else None) for r in rows])
        full = [{**r, "result": None, "error": None, "worker": None, "started_at": None,
                 "finished_at": None} for r in rows]
        for row in full:
            self._publish(row)
        return [task_view(r) for r in full]

    def timeline(self, task_id: str) -> list[dict]:
        with self.db.connect() as conn:
            rows = conn.execute(select(task_history).where(task_history.c.task_id == task_id)
                                .order_by(task_history.c.id)).mappings().all()
        return [{"at": _iso(r["at"]), "status": r["status"], "attempt": r["attempt"],
                 "worker": r["worker"], "detail": r["detail"]} for r in rows]

    def retries_of(self, task_id: str) -> list[str]:
        """Ids of the tasks queued as retries of this one, oldest first."""
        with self.db.connect() as conn:
            return list(conn.execute(select(tasks.c.id).where(tasks.c.parent_id == task_id)
                                     .order_by(tasks.c.enqueued_at)).scalars())

    def get(self, task_id: str) -> dict | None:
        with self.db.connect() as conn:
            row = conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first()
        return task_view(row) if row else None

    def _publish(self, row: Mapping[str, Any]) -> None:
        # Results can be large; subscribers fetch them from the record when they want them.
        try:
            self.bus.publish({"kind": "task", "task": task_view(row, with_result=False)})
        except Exception:
            # The record is written and stays the truth; a subscriber that misses this
            # event is told to resynchronise when the log's gap shows.
            log.exception("could not publish the change of task %s", row["id"])

    @staticmethod
    def _log(row: Mapping[str, Any]) -> None:
        status, task_id = row["status"], row["id"]
        if status == SUCCESS:
            log.info("Task %s completed successfully", task_id)
        elif status == FAILURE:
            error = row["error"] or {}
            log.warning("Task %s failed (%s): %s", task_id, error.get("type"), error.get("message"))
