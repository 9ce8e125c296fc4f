"""Finds tasks whose worker died and either queues them again or fails them as lost.

Huey's dequeue has no acknowledgement: a task whose worker is SIGKILLed vanishes from the
queue. Its record says STARTED on a worker whose heartbeat stopped; that is what we look
for. A Redis that lost its data (restart without persistence) loses the queue itself; a
marker key that disappears with it tells us to queue every waiting task again. Duplicate
messages are harmless: only one run can claim a record.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import select

from jobs.models import FAILURE, RETRY, STARTED, WAITING_STATUSES, tasks, utcnow, workers

log = logging.getLogger("jobs.reaper")

QUEUE_MARKER_KEY = "bma:queue:marker"


class Reaper:
    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="task-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        interval = self.runtime.settings.heartbeat_interval
        while True:
            try:
                self.reap_once()
            except Exception:
                log.exception("reaper pass failed; retrying in %ss", interval)
            if self._stop.wait(interval):
                return

    def reap_once(self) -> int:
        acted = self._requeue_if_queue_lost()
        acted += self._recover_lost_runs()
        return acted

    def _recover_lost_runs(self) -> int:
        settings, tracker = self.runtime.settings, self.runtime.tracker
        cutoff = utcnow() - dt.timedelta(seconds=settings.worker_lost_after)
        alive = select(workers.c.id).where(workers.c.last_seen >= cutoff,
                                           workers.c.stopped_at.is_(None))
        with tracker.db.connect() as conn:
            orphans = conn.execute(
                select(tasks.c.id, tasks.c.type, tasks.c.attempts, tasks.c.max_attempts,
                       tasks.c.worker)
                .where(tasks.c.status == STARTED, tasks.c.worker.not_in(alive))
            ).all()
        for task_id, task_type, attempts, max_attempts, worker in orphans:
            message = f"worker {worker} stopped responding while running it"
            if attempts < max_attempts:
                moved = tracker.transition(
                    task_id, RETRY, expect=(STARTED,), attempt=attempts, worker=None,
                    error={"type": "lost", "message": f"{message}; queued again "
                                                      f"(attempt {attempts} of {max_attempts})"})
                if moved is not None:
                    log.warning("Task %s lost with worker %s; queued again", task_id, worker)
                    self.runtime.enqueue(task_id, task_type)
            else:
                tracker.transition(
                    task_id, FAILURE, expect=(STARTED,), attempt=attempts, finished_at=utcnow(),
                    error={"type": "lost", "message": f"{message}; no attempts left "
                                                      f"({attempts} of {max_attempts})"})
        return len(orphans)

    def _requeue_if_queue_lost(self) -> int:
        client = self.runtime.redis_client
        if client is None:
            return 0
        if not client.set(QUEUE_MARKER_KEY, "1", nx=True):
            return 0  # the marker survived: the queue did too
        with self.runtime.tracker.db.connect() as conn:
            waiting = conn.execute(select(tasks.c.id, tasks.c.type)
                                   .where(tasks.c.status.in_(WAITING_STATUSES))).all()
        if waiting:
            log.warning("the Redis queue was empty of our marker (Redis lost its data?): "
                        "queueing %d waiting task(s) again", len(waiting))
        for task_id, task_type in waiting:
            self.runtime.enqueue(task_id, task_type)
        return len(waiting)
