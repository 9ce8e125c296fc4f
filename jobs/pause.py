"""Pausing the queue, for every task type or for one: kept in the `state` table, so a pause
survives restarts and holds for every worker on every machine.

While a type is paused its tasks stay waiting (PENDING or RETRY) and running ones finish. A
worker that dequeues a paused task's message drops it instead of claiming the record (see
`Executor.run`); resuming queues every waiting task of the resumed types again. A duplicate
message is harmless: only one run can claim a record.

Workers ask `PauseCache` before each claim; it reads the state at most once per
PAUSE_CHECK_INTERVAL, so the check costs nothing on the claim path.
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import Connection, Engine, select

from jobs import shared_state
from jobs.db import reading
from jobs.models import WAITING_STATUSES, now_iso, tasks

KEY = "queue_pause"
NONE: dict = {}  # the state while nothing is paused
ALL = "*"  # the key under which a pause of every type is kept


def read(db: Engine | Connection) -> dict[str, dict]:
    """{type or "*": {"since", "by"}} for every pause in force."""
    with reading(db) as conn:
        return shared_state.read(conn, KEY, NONE)


def _write(db: Engine, change) -> tuple[dict, bool]:
    before, after = shared_state.change(db, KEY, NONE, change)
    return after, after != before


def pause(db: Engine, task_type: str | None, by: str) -> tuple[dict, bool]:
    """Pause one type (or all); returns the pauses in force and whether this changed them."""
    key = task_type or ALL
    stamp = {"since": now_iso(), "by": by}
    return _write(db, lambda pauses: pauses if key in pauses else {**pauses, key: stamp})


def resume(db: Engine, task_type: str | None) -> tuple[dict, bool]:
    """Lift the pause of one type, or every pause."""
    if task_type is None:
        return _write(db, lambda _pauses: {})
    return _write(db, lambda pauses: {k: v for k, v in pauses.items() if k != task_type})


def is_paused(pauses: dict, task_type: str) -> bool:
    return ALL in pauses or task_type in pauses


def requeue_waiting(runtime, pauses: dict, chunk: int = 1000) -> int:
    """Queue again every waiting task no pause holds back (their messages were dropped)."""
    queued, last = 0, ""
    while True:
        with runtime.db.connect() as conn:
            rows = conn.execute(select(tasks.c.id, tasks.c.type)
                                .where(tasks.c.status.in_(WAITING_STATUSES), tasks.c.id > last)
                                .order_by(tasks.c.id).limit(chunk)).all()
        if not rows:
            return queued
        for task_id, task_type in rows:
            if not is_paused(pauses, task_type):
                runtime.enqueue(task_id, task_type)
                queued += 1
        last = rows[-1][0]


class PauseCache:
    """`cache(task_type)` → paused?, re-reading the state at most every `interval` seconds.

    A "paused" answer is read afresh before it is given: the worker drops the message on it,
    and a resume queues the waiting tasks again at once, so a stale "paused" would drop those
    new messages too and leave the tasks to the lost-message sweep (up to 2 x WORKER_LOST_AFTER).
    Only messages of paused types pay the read; the claim path of running work does not.
    """

    def __init__(self, db: Engine, interval: float) -> None:
        self._db = db
        self._interval = interval
        self._pauses: dict = {}
        self._expires = 0.0
        self._lock = threading.Lock()

    def __call__(self, task_type: str) -> bool:
        now = time.monotonic()
        stale = is_paused(self._pauses, task_type)
        if stale or now >= self._expires:
            with self._lock:
                if stale or now >= self._expires:
                    self._pauses = read(self._db)
                    self._expires = now + self._interval
        return is_paused(self._pauses, task_type)
