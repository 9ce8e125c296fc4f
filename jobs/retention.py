"""Retention: finished tasks older than TASK_RETENTION_DAYS leave the history, in batches.

What they count for stays: stats read the stored aggregates (jobs/task_stats.py), which a
task joined when it finished, and the posts written by a task are kept (a post names its
batch, not a task record that must exist).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import Engine, delete, func, select

from jobs.models import FINAL_STATUSES, iso, task_history, tasks, utcnow

log = logging.getLogger("jobs.retention")
BATCH = 1000  # tasks per transaction: short write locks, visible progress


def prune(db: Engine, days: int, *, batch: int = BATCH,
          progress: Callable[[int, int], None] | None = None,
          now: dt.datetime | None = None) -> dict:
    """Delete finished tasks (and their timelines) that finished more than `days` ago.
    `days` 0 keeps everything. `progress(done, total)` after each batch."""
    if days <= 0:
        return {"retention_days": days, "pruned": 0}
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    expired = (tasks.c.finished_at < cutoff, tasks.c.status.in_(tuple(FINAL_STATUSES)))
    with db.connect() as conn:
        total = conn.execute(select(func.count()).select_from(tasks).where(*expired)).scalar_one()
    done = 0
    if progress:
        progress(done, total)
    while True:
        with db.begin() as conn:
            ids = list(conn.execute(select(tasks.c.id).where(*expired)
                                    .order_by(tasks.c.finished_at).limit(batch)).scalars())
            if not ids:
                break
            conn.execute(delete(task_history).where(task_history.c.task_id.in_(ids)))
            conn.execute(delete(tasks).where(tasks.c.id.in_(ids)))
        done += len(ids)
        if progress:
            progress(done, max(total, done))
    if done:
        log.info("Retention: pruned %d tasks finished before %s", done, cutoff.isoformat())
    return {"retention_days": days, "cutoff": iso(cutoff),
            "pruned": done}
