"""Read-only questions the dashboard and the API ask of the task records."""
from __future__ import annotations

import datetime as dt
import statistics

from sqlalchemy import Engine, desc, func, select

from jobs.models import FAILURE, STARTED, WAITING_STATUSES, tasks, utcnow, workers
from jobs.tracking import task_view

ACTIVE_STATUSES = (*WAITING_STATUSES, STARTED)


def list_tasks(db: Engine, *, status: str | None = None, statuses: tuple[str, ...] | None = None,
               task_type: str | None = None, owner: str | None = None,
               id_prefix: str | None = None, page: int = 1,
               per_page: int = 50) -> tuple[list[dict], int]:
    """A page of tasks, newest first, and how many match. `statuses`: any of these."""
    conditions = []
    if status:
        conditions.append(tasks.c.status == status)
    if statuses is not None:
        conditions.append(tasks.c.status.in_(statuses))
    if task_type:
        conditions.append(tasks.c.type == task_type)
    if owner:
        conditions.append(tasks.c.owner == owner)
    if id_prefix:
        escaped = id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(tasks.c.id.like(f"{escaped}%", escape="\\"))
    with db.connect() as conn:
        total = conn.execute(select(func.count()).select_from(tasks).where(*conditions)).scalar_one()
        if total <= (page - 1) * per_page:
            return [], total
        rows = conn.execute(
            select(tasks).where(*conditions)
            .order_by(desc(tasks.c.enqueued_at), desc(tasks.c.id))
            .limit(per_page).offset((page - 1) * per_page)
        ).mappings().all()
    return [task_view(r, with_result=False) for r in rows], total


def active_tasks(db: Engine, owner: str | None = None) -> list[dict]:
    query = select(tasks).where(tasks.c.status.in_(ACTIVE_STATUSES))
    if owner is not None:
        query = query.where(tasks.c.owner == owner)
    with db.connect() as conn:
        rows = conn.execute(query.order_by(tasks.c.enqueued_at).limit(1000)).mappings().all()
    return [task_view(r, with_result=False) for r in rows]


def counts(db: Engine) -> dict[str, dict[str, int]]:
    """{type: {status: n}} over every recorded task."""
    with db.connect() as conn:
        rows = conn.execute(select(tasks.c.type, tasks.c.status, func.count())
                            .group_by(tasks.c.type, tasks.c.status)).all()
    result: dict[str, dict[str, int]] = {}
    for task_type, status, n in rows:
        result.setdefault(task_type, {})[status] = n
    return result


def worker_list(db: Engine, lost_after: float) -> list[dict]:
    now = utcnow()
    with db.connect() as conn:
        rows = conn.execute(select(workers).where(
            workers.c.last_seen >= now - dt.timedelta(hours=1)).order_by(workers.c.id)).mappings().all()
    return [{
        "id": r["id"], "hostname": r["hostname"], "pid": r["pid"], "kind": r["kind"],
        "concurrency": r["concurrency"], "running": r["running"],
        "last_seen": r["last_seen"].isoformat().replace("+00:00", "Z"),
        "seconds_since_heartbeat": round((now - r["last_seen"]).total_seconds(), 1),
        "state": ("stopped" if r["stopped_at"] is not None
                  else "alive" if (now - r["last_seen"]).total_seconds() < lost_after else "lost"),
    } for r in rows]


def queue_summary(db: Engine) -> dict:
    now = utcnow()
    hour_ago = now - dt.timedelta(hours=1)
    with db.connect() as conn:
        by_status = dict(conn.execute(
            select(tasks.c.status, func.count()).where(tasks.c.status.in_(ACTIVE_STATUSES))
            .group_by(tasks.c.status)).all())
        oldest = conn.execute(select(func.min(tasks.c.enqueued_at))
                              .where(tasks.c.status.in_(WAITING_STATUSES))).scalar_one()
        failures = conn.execute(select(func.count()).select_from(tasks).where(
            tasks.c.status == FAILURE, tasks.c.finished_at >= hour_ago)).scalar_one()
        total = conn.execute(select(func.count()).select_from(tasks)).scalar_one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    return {
        "running": by_status.get(STARTED, 0),
        "waiting": sum(by_status.get(s, 0) for s in WAITING_STATUSES),
        "oldest_waiting_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
        "failures_last_hour": failures,
        "total_tracked": total,
    }


def duration_percentiles(db: Engine, *, since: dt.timedelta = dt.timedelta(hours=1)) -> dict:
    """Per type: p50/p95/p99 of run time over tasks finished within `since`."""
    with db.connect() as conn:
        rows = conn.execute(
            select(tasks.c.type, tasks.c.started_at, tasks.c.finished_at)
            .where(tasks.c.finished_at >= utcnow() - since, tasks.c.started_at.is_not(None))
            .order_by(desc(tasks.c.finished_at)).limit(20_000)).all()
    per_type: dict[str, list[float]] = {}
    for task_type, started, finished in rows:
        per_type.setdefault(task_type, []).append(max((finished - started).total_seconds(), 0.0))
    return {t: _percentiles(v) for t, v in per_type.items()}


def _percentiles(values: list[float]) -> dict:
    if len(values) == 1:
        only = round(values[0], 4)
        return {"count": 1, "p50": only, "p95": only, "p99": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"count": len(values), "p50": round(cuts[49], 4), "p95": round(cuts[94], 4),
            "p99": round(cuts[98], 4)}
