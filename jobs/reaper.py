"""Finds tasks that nothing will run any more and queues them again (or fails them as lost).

Huey's dequeue has no acknowledgement, and a process can die between any two steps, so a
task can be left behind in three ways:
- its run's worker died: the record says STARTED on a worker whose heartbeat stopped;
- it waits (PENDING/RETRY) but its queue message is gone: a crash between recording and
  queueing, between dequeue and claim, or in the middle of recovering a lost run;
- Redis lost its data (a restart without persistence): a marker key that disappears with
  the queue tells us to queue every waiting task again.
Duplicate messages are harmless: only one run can claim a record.

Every process runs a Reaper (the web servers in a thread; each worker process from its
watchdog), so recovery does not die with the workers it watches; a Redis lease lets one
of them act at a time. Time comes from the shared clock (jobs/clock.py).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket

from sqlalchemy import select

from jobs import faults, pause
from jobs.background import BackgroundThread
from jobs.models import FAILURE, RETRY, STARTED, WAITING_STATUSES, tasks, workers
from jobs.outage import REDIS_ERRORS, redis_outage

log = logging.getLogger("jobs.reaper")

QUEUE_MARKER_KEY = "bma:queue:marker"
LEASE_KEY = "bma:reaper:lease"
STRANDED_BATCH = 10_000  # waiting records looked at per pass

# Take the lease if free, extend it if ours.
_LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class Reaper(BackgroundThread):
    thread_name = "task-reaper"

    def __init__(self, runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self._token: tuple[int, str] | None = None  # (pid, lease token): new after a fork
        self._failing = False
        self._lease = runtime.redis_client.register_script(_LEASE_LUA) if runtime.redis_client else None

    def _loop(self) -> None:
        interval = self.runtime.settings.heartbeat_interval
        while True:
            self.reap_once()
            if self._stop.wait(interval):
                return

    def reap_once(self) -> int:
        """One pass. A failure is logged once until a pass works again (a Redis outage by the
        outage tracker), not once per pass."""
        try:
            acted = self._reap()
        except REDIS_ERRORS as exc:
            redis_outage.failed(exc)
            return 0
        except Exception:
            if not self._failing:
                log.exception("reaper pass failed; retrying every pass until one works")
            self._failing = True
            return 0
        if self._failing:
            log.warning("reaper passes work again")
            self._failing = False
        return acted

    def _reap(self) -> int:
        if not self._holds_lease():
            return 0
        acted = self._requeue_if_queue_lost()
        acted += self._recover_lost_runs()
        acted += self._requeue_stranded()
        return acted

    @property
    def _stale_after(self) -> float:
        # A waiting record this old and not in the queue lost its message. Half the lost-worker
        # window keeps recovery within 2 x WORKER_LOST_AFTER of a loss, lease hand-over included.
        return self.runtime.settings.worker_lost_after / 2

    def _holds_lease(self) -> bool:
        if self._lease is None:
            return True  # embedded mode: one process
        if self._token is None or self._token[0] != os.getpid():
            self._token = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
        ttl_ms = int(self.runtime.settings.heartbeat_interval * 3 * 1000)
        with redis_outage.watch():
            return bool(self._lease(keys=[LEASE_KEY], args=[self._token[1], ttl_ms]))

    def _recover_lost_runs(self) -> int:
        settings, tracker = self.runtime.settings, self.runtime.tracker
        cutoff = self.runtime.clock.now() - dt.timedelta(seconds=settings.worker_lost_after)
        alive = select(workers.c.id).where(workers.c.last_seen >= cutoff,
                                           workers.c.stopped_at.is_(None))
        with tracker.db.connect() as conn:
            orphans = conn.execute(
                select(tasks.c.id, tasks.c.type, tasks.c.attempts, tasks.c.max_attempts,
                       tasks.c.worker)
                .where(tasks.c.status == STARTED, tasks.c.worker.not_in(alive))
            ).all()
        for task_id, task_type, attempts, max_attempts, worker in orphans:
            # The worker named in a field of its own, not in the message: authors are shown
            # an alias of it (webapp/role_views.py).
            message = "its worker stopped responding while running it"
            if attempts < max_attempts:
                # Recorded first, then queued: a crash in between leaves a waiting record
                # without a message, which _requeue_stranded queues again.
                moved = tracker.transition(
                    task_id, RETRY, expect=(STARTED,), attempt=attempts, worker=None,
                    error={"type": "lost", "worker": worker,
                           "message": f"{message}; queued again "
                                      f"(attempt {attempts} of {max_attempts})"})
                if moved is not None:
                    log.warning("Task %s lost with worker %s; queued again", task_id, worker)
                    faults.point("mid_recovery")
                    self.runtime.enqueue(task_id, task_type)
            else:
                tracker.transition(
                    task_id, FAILURE, expect=(STARTED,), attempt=attempts,
                    error={"type": "lost", "worker": worker,
                           "message": f"{message}; no attempts left "
                                      f"({attempts} of {max_attempts})"})
        return len(orphans)

    def _requeue_stranded(self) -> int:
        # A paused type's records wait on purpose. The pauses are read once per pass and left
        # out by the query: asked per record, a pause of thousands of waiting tasks cost a read
        # each every pass, and those tasks filled the batch ahead of other types' lost ones.
        cutoff = self.runtime.clock.now() - dt.timedelta(seconds=self._stale_after)
        query = (select(tasks.c.id, tasks.c.type)
                 .where(tasks.c.status.in_(WAITING_STATUSES), tasks.c.updated_at < cutoff)
                 .limit(STRANDED_BATCH))
        with self.runtime.tracker.db.connect() as conn:
            pauses = pause.read(conn)
            if pause.ALL in pauses:
                return 0
            if pauses:
                query = query.where(tasks.c.type.not_in(list(pauses)))
            stale = conn.execute(query).all()
        if not stale:
            return 0
        queued = self.runtime.queued_ids()
        stranded = [(task_id, task_type) for task_id, task_type in stale if task_id not in queued]
        if stranded:
            # Read again: a worker may have taken one between the two reads (its message
            # gone from the queue, its record claimed), which is not a lost message.
            waiting = self._still_waiting([task_id for task_id, _ in stranded])
            stranded = [(task_id, task_type) for task_id, task_type in stranded if task_id in waiting]
        if stranded:
            log.warning("queueing %d waiting task(s) again whose queue message was lost: %s",
                        len(stranded), ", ".join(t for t, _ in stranded[:5])
                        + (" ..." if len(stranded) > 5 else ""))
        for task_id, task_type in stranded:
            self.runtime.enqueue(task_id, task_type)
        return len(stranded)

    def _still_waiting(self, task_ids: list[str]) -> set[str]:
        """Those of `task_ids` still waiting. Read by id alone: with the status too, SQLite
        may walk every waiting task."""
        with self.runtime.tracker.db.connect() as conn:
            rows = conn.execute(select(tasks.c.id, tasks.c.status).where(tasks.c.id.in_(task_ids)))
            return {task_id for task_id, status in rows if status in WAITING_STATUSES}

    def _requeue_if_queue_lost(self) -> int:
        client = self.runtime.redis_client
        if client is None:
            return 0
        with redis_outage.watch():
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
