"""Acting on every task that matches a filter: revoke them all, or retry them all.

Set-based: ids are read a chunk at a time (keyset on the id) and each chunk is changed with
one UPDATE (or one INSERT for retries) through the tracker, which still publishes one
event per changed task, so thousands take seconds and every board sees each change.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from jobs import queries
from jobs.db import reading
from jobs.models import FAILURE, REVOKED, STARTED, WAITING_STATUSES, tasks
from jobs.runtime import QueueUnavailable

CHUNK = 500
ACTIONS = {
    "revoke": (*WAITING_STATUSES, STARTED),  # what each action applies to
    "retry": (FAILURE, REVOKED),
}


@dataclass(frozen=True)
class TaskFilter:
    status: str | None = None
    type: str | None = None
    owner: str | None = None
    q: str | None = None  # the start of a task id

    def conditions(self, action: str) -> list:
        eligible = ACTIONS[action]
        wanted = tuple(s for s in eligible if self.status in (None, s))
        where = [tasks.c.status.in_(wanted)]
        if self.type:
            where.append(tasks.c.type == self.type)
        if self.owner:
            where.append(tasks.c.owner == self.owner)
        if self.q:
            where.extend(queries.id_prefix_range(self.q))
        if action == "retry":
            # A task already retried is not queued again by a second "retry all".
            child = aliased(tasks)
            where.append(~exists().where(child.c.parent_id == tasks.c.id))
        return where


def count(db, action: str, task_filter: TaskFilter) -> int:
    with reading(db) as conn:
        return conn.execute(select(func.count()).select_from(tasks)
                            .where(*task_filter.conditions(action))).scalar_one()


def _chunks(db, action: str, task_filter: TaskFilter, columns):
    """The matching tasks, a chunk at a time, in id order (read before each is changed)."""
    last = ""
    while True:
        with reading(db) as conn:
            rows = conn.execute(select(*columns).where(*task_filter.conditions(action),
                                                       tasks.c.id > last)
                                .order_by(tasks.c.id).limit(CHUNK)).mappings().all()
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def revoke(runtime, task_filter: TaskFilter, terminate: bool = False) -> tuple[int, int]:
    """(matched, revoked). A task that moved on between the read and the write is skipped."""
    matched = done = 0
    for rows in _chunks(runtime.db, "revoke", task_filter, [tasks.c.id]):
        matched += len(rows)
        moved = runtime.tracker.transition_many(
            [r["id"] for r in rows], REVOKED, expect=ACTIONS["revoke"],
            terminate=terminate)
        done += len(moved)
    return matched, done


def retry(runtime, task_filter: TaskFilter) -> tuple[int, int]:
    """(matched, queued): each matching FAILURE/REVOKED task queued again as a new task
    linked to it, as a single retry does."""
    matched = done = 0
    columns = [tasks.c.id, tasks.c.type, tasks.c.owner, tasks.c.params]
    for rows in _chunks(runtime.db, "retry", task_filter, columns):
        matched += len(rows)
        created = runtime.tracker.create_many(
            [{"type": r["type"], "owner": r["owner"], "params": r["params"], "parent_id": r["id"]}
             for r in rows], runtime.settings.task_max_attempts)
        for i, record in enumerate(created):
            try:
                runtime.enqueue_recorded(record)
            except QueueUnavailable:
                # Taken back like the refused one: the rest were never offered to the queue.
                runtime.tracker.discard([r["task_id"] for r in created[i + 1:]])
                raise
        done += len(created)
    return matched, done
