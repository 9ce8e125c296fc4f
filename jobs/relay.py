"""Sends the task changes whose event never reached the event bus.

Every change bumps its record's `version` in the transaction that writes it, and the Redis
bus records, per task, the last version it sent (jobs/events.py). A change whose publish
failed (Redis unreachable), or whose process died between COMMIT and publish, leaves the
record ahead of the bus. `Relay.pass_once` looks at the records changed since its last pass
and sends the current state of each one that is ahead. The bus refuses a version older than
one it sent, so a board receives each task's changes in order and catches up without
reloading, within one pass of Redis answering again.

Why a version rather than an outbox table: the version costs nothing on a worker's hot path
(the same UPDATE), where an outbox costs an INSERT per change and a DELETE per delivery;
and what a board or a client of /api/events needs after a gap is each task's latest state,
not every step it missed. The relay runs in the web processes, which outlive workers;
several relays are harmless (the bus sends each version once).
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from jobs.background import BackgroundThread
from jobs.models import tasks
from jobs.tracking import Tracker, task_view

log = logging.getLogger("jobs.relay")

# A change younger than this is left to its own publisher (it is probably publishing now).
GRACE = dt.timedelta(seconds=1)
# Each pass looks this far behind where the last one stopped: transactions commit a little
# after the time they write, and hosts' clocks differ a little.
OVERLAP = dt.timedelta(seconds=5)
# How far back a fresh relay (a web process starting) looks; less than SENT_TTL.
LOOKBACK = dt.timedelta(minutes=10)
CHUNK = 1000
INTERVAL = 1.0  # seconds between passes


class Relay(BackgroundThread):
    thread_name = "event-relay"

    def __init__(self, tracker: Tracker) -> None:
        super().__init__()
        self.tracker = tracker
        self.bus = tracker.bus
        self.since: dt.datetime | None = None
        self._failing = False

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL):
            self.run_once_logged()

    def pass_once(self) -> int:
        """Send what is behind among the records changed since the last pass; how many.

        Raises when Redis or the database cannot be reached; the next pass covers the
        same ground again.
        """
        now = self.tracker.now()  # the clock the records' times were written with
        upto = now - GRACE
        start = self.since - OVERLAP if self.since is not None else now - LOOKBACK
        with self.tracker.db.connect() as conn:
            changed = conn.execute(select(tasks.c.id, tasks.c.version)
                                   .where(tasks.c.updated_at >= start, tasks.c.updated_at < upto)
                                   .order_by(tasks.c.updated_at)).all()
        sent = 0
        for i in range(0, len(changed), CHUNK):
            chunk = changed[i:i + CHUNK]
            versions = self.bus.sent_versions([task_id for task_id, _ in chunk])
            behind = [task_id for (task_id, version), seen in zip(chunk, versions) if seen < version]
            if behind:
                with self.tracker.db.connect() as conn:
                    rows = conn.execute(select(tasks).where(tasks.c.id.in_(behind))
                                        .order_by(tasks.c.updated_at)).mappings().all()
                self.bus.send_tasks([task_view(r, with_result=False) for r in rows])
                sent += len(rows)
        self.since = upto
        if sent:
            log.info("relayed %d task change(s) whose event had not been sent", sent)
        return sent

    def run_once_logged(self) -> int:
        """`pass_once` for a periodic loop: one log line when passes start failing and one
        when they work again, not one per pass."""
        try:
            sent = self.pass_once()
        except Exception as exc:  # noqa: BLE001 - retried next pass; logged once per outage
            if not self._failing:
                self._failing = True
                log.warning("the event relay cannot run (%s); it retries every pass", exc)
            return 0
        if self._failing:
            self._failing = False
            log.info("the event relay runs again")
        return sent
