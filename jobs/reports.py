"""The weekly report: what was generated and how the task pipeline behaved."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select

from jobs.db import reading
from jobs.models import FAILURE, SUCCESS, posts, tasks, utcnow


def weekly_report(db: Engine, *, end: dt.datetime | None = None, progress=None) -> dict:
    end = end or utcnow()
    start = end - dt.timedelta(days=7)
    steps = 3
    with reading(db) as conn:
        by_platform = dict(conn.execute(
            select(posts.c.platform, func.count()).where(posts.c.created_at >= start,
                                                         posts.c.created_at < end)
            .group_by(posts.c.platform)).all())
        if progress:
            progress(1, steps)
        rows = conn.execute(
            select(tasks.c.type, tasks.c.status, func.count())
            .where(tasks.c.enqueued_at >= start, tasks.c.enqueued_at < end)
            .group_by(tasks.c.type, tasks.c.status)).all()
        if progress:
            progress(2, steps)
        durations = conn.execute(
            select(tasks.c.type, tasks.c.started_at, tasks.c.finished_at)
            .where(tasks.c.status == SUCCESS, tasks.c.finished_at >= start,
                   tasks.c.finished_at < end, tasks.c.started_at.is_not(None))).all()
    task_counts: dict[str, dict[str, int]] = {}
    for task_type, status, n in rows:
        task_counts.setdefault(task_type, {})[status] = n
    per_type: dict[str, list[float]] = {}
    for task_type, started, finished in durations:
        per_type.setdefault(task_type, []).append((finished - started).total_seconds())
    total = sum(sum(c.values()) for c in task_counts.values())
    failed = sum(c.get(FAILURE, 0) for c in task_counts.values())
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "posts_by_platform": by_platform,
        "posts_total": sum(by_platform.values()),
        "tasks": task_counts,
        "tasks_total": total,
        "failure_rate": round(failed / total, 4) if total else 0.0,
        "mean_duration_seconds": {k: round(sum(v) / len(v), 3) for k, v in per_type.items()},
    }
