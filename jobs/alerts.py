"""Alerts: conditions an operator must hear about, posted to ALERT_WEBHOOK_URL.

Each web process runs one Alerter thread (never on a request's path). Every
ALERT_CHECK_INTERVAL it looks at the records for: tasks that failed (grouped: at most one
message per task type per minute, counting what the minute gathered), workers lost, the
oldest waiting task older than ALERT_BACKLOG_SECONDS, tasks running past their timeout, and
Redis not answering. Each alert is stored (the health page lists them) and sent by a
sender thread, retried with back-off, as Slack-compatible JSON: `{"text": ..., "alert":
{"kind", "key", "message", "at", "details"}}`.

With several web processes, a short Redis key claims each alert so only one sends it; when
Redis itself is down, each process says so once.
"""
from __future__ import annotations

import datetime as dt
import logging
import queue
import time

import httpx
import redis
from sqlalchemy import Connection, Engine, case, desc, insert, select, update

from jobs import queries
from jobs.background import BackgroundThread
from jobs.db import reading
from jobs import workers as worker_states
from jobs.models import FAILURE, STARTED, alerts, iso, tasks, utcnow

log = logging.getLogger("jobs.alerts")

FAILURE_WINDOW = 60.0      # seconds: one failure message per type per window
LATE_COMMIT = dt.timedelta(seconds=10)  # a failure committed this long after its stamp is counted
BACKLOG_REPEAT = 600.0     # seconds between reminders while the backlog stays old
SEND_ATTEMPTS = 4          # tries per alert; waits 1, 2, 4 s between them
CLAIM_PREFIX = "bma:alert:"


class Alerter(BackgroundThread):
    """Runs the checks on its own thread; an AlertSender delivers what they raise."""
    thread_name = "alert-checks"

    def __init__(self, runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self.settings = runtime.settings
        self.db: Engine = runtime.db
        self.sender = AlertSender(self.db, self.settings.alert_webhook_url)
        # Task and heartbeat times are written with the shared clock (jobs/clock.py): the
        # checks read them against it, not against this machine's own clock.
        self._since = runtime.clock.now()         # failures after this are still to report
        self._counted: dict[str, dt.datetime] = {}  # failures seen within LATE_COMMIT of _since
        self._failures: dict[str, dict] = {}       # per type: gathered since its last message
        self._told: dict[str, float] = {}          # alert key -> when this process raised it
        self._redis_down = False

    def start(self) -> None:
        super().start()
        self.sender.start()

    def stop(self) -> None:
        super().stop()
        self.sender.stop()

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.settings.alert_check_interval):
            try:
                self.check_once()
                failing = False
            except Exception:
                if not failing:  # one line per outage, not per pass
                    log.exception("alert checks failed; retrying every %ss",
                                  self.settings.alert_check_interval)
                failing = True

    # -- the checks --
    def check_once(self) -> None:
        self._check_redis()
        now = self.runtime.clock.now()
        self._check_failures(now)
        self._check_workers(now)
        self._check_backlog(now)
        self._check_overdue(now)

    def _check_redis(self) -> None:
        client = self.runtime.redis_client
        if client is None:
            return
        try:
            client.ping()
        except redis.RedisError as exc:
            if not self._redis_down:
                self._redis_down = True
                self.raise_alert("redis_unreachable", "redis", f"Redis is unreachable: {exc}",
                                 {"error": str(exc)}, claim=False)
            return
        if self._redis_down:
            self._redis_down = False
            log.info("Redis answers again")

    def _check_failures(self, now: dt.datetime) -> None:
        # A failure is stamped when it happens and committed a moment later (a worker's
        # outcome waits for its next claim, or for the SQLite write lock), so a pass also
        # reads the LATE_COMMIT seconds before the last one and skips what it counted then.
        with reading(self.db) as conn:
            rows = conn.execute(failures_between(self._since - LATE_COMMIT, now)).all()
        self._since = now
        for task_id, task_type, finished_at in rows:
            if task_id in self._counted:
                continue
            self._counted[task_id] = finished_at
            gathered = self._failures.setdefault(task_type, {"count": 0, "example": task_id})
            gathered["count"] += 1
            gathered["example"] = task_id
        horizon = now - LATE_COMMIT
        self._counted = {i: at for i, at in self._counted.items() if at > horizon}
        for task_type, gathered in list(self._failures.items()):
            key = f"task_failed:{task_type}"
            if self._recent(key, FAILURE_WINDOW):
                continue  # grouped into the next message
            del self._failures[task_type]
            n = gathered["count"]
            self.raise_alert(
                "task_failed", key,
                f"{n} {task_type} task{'s' if n != 1 else ''} failed (e.g. task {gathered['example']})",
                {"task_type": task_type, "count": n, "example_task_id": gathered["example"]},
                window=FAILURE_WINDOW)

    def _check_workers(self, now: dt.datetime) -> None:
        for worker in worker_states.list_workers(self.db, self.settings.worker_lost_after, now=now):
            if worker["state"] == "lost":
                self.raise_alert(
                    "worker_lost", f"worker_lost:{worker['id']}:{worker['started_at']}",
                    f"worker {worker['id']} is lost: no heartbeat for "
                    f"{worker['seconds_since_heartbeat']:g}s", {"worker": worker["id"],
                    "last_heartbeat": worker["last_heartbeat"]}, window=3600)

    def _check_backlog(self, now: dt.datetime) -> None:
        with reading(self.db) as conn:
            oldest = queries.oldest_waiting(conn)
        if oldest is None:
            return
        age = (now - oldest).total_seconds()
        if age > self.settings.alert_backlog_seconds:
            self.raise_alert(
                "backlog", "backlog",
                f"the oldest waiting task has waited {age:.0f}s "
                f"(ALERT_BACKLOG_SECONDS={self.settings.alert_backlog_seconds:g})",
                {"oldest_waiting_seconds": round(age, 1)}, window=BACKLOG_REPEAT)

    def _check_overdue(self, now: dt.datetime) -> None:
        for task in overdue_tasks(self.db, self.settings, now):
            self.raise_alert(
                "task_overdue", f"task_overdue:{task['task_id']}",
                f"task {task['task_id']} ({task['type']}) has run {task['running_seconds']:.0f}s, "
                f"past its {task['timeout']:g}s timeout", task, window=3600)

    # -- raising and sending --
    def raise_alert(self, kind: str, key: str, message: str, details: dict, *,
                    window: float = 3600, claim: bool = True) -> bool:
        """Record and queue an alert unless this key was raised within `window` seconds."""
        if self._recent(key, window):
            return False
        self._told[key] = time.monotonic()
        if claim and not self._claim(key, window):
            return False  # another web process has raised it
        log.warning("ALERT %s: %s", kind, message)
        with self.db.begin() as conn:
            alert_id = conn.execute(insert(alerts).values(
                at=utcnow(), kind=kind, key=key[:200], message=message[:1000], details=details,
                attempts=0, state="pending" if self.settings.alert_webhook_url else "not_sent",
            ).returning(alerts.c.id)).scalar_one()
        if self.settings.alert_webhook_url:
            self.sender.outbox.put(alert_id)
        return True

    def _recent(self, key: str, window: float) -> bool:
        told = self._told.get(key)
        return told is not None and time.monotonic() - told < window

    def _claim(self, key: str, window: float) -> bool:
        client = self.runtime.redis_client
        if client is None:
            return True
        try:
            return bool(client.set(CLAIM_PREFIX + key, "1", nx=True, ex=max(int(window), 1)))
        except redis.RedisError:
            return True  # better twice than never



class AlertSender(BackgroundThread):
    """Posts stored alerts to the webhook, one at a time, retried with back-off."""
    thread_name = "alert-sender"

    def __init__(self, db: Engine, url: str | None) -> None:
        super().__init__()
        self.db = db
        self.url = url
        self.outbox: queue.Queue[int | None] = queue.Queue()

    def stop(self) -> None:
        self._stop.set()
        self.outbox.put(None)  # wakes the loop from its wait for the next alert
        super().stop()

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                alert_id = self.outbox.get()
                if alert_id is None:
                    return
                self._deliver(client, alert_id)

    def _deliver(self, client: httpx.Client, alert_id: int) -> None:
        with reading(self.db) as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        payload = {"text": f":rotating_light: Book Marketing Agent: {row['message']}",
                   "alert": {"kind": row["kind"], "key": row["key"], "message": row["message"],
                             "at": iso(row["at"]), "details": row["details"]}}
        error = None
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                response = client.post(self.url, json=payload)
                error = None if response.is_success else f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if error is None or attempt == SEND_ATTEMPTS or self._stop.wait(2 ** (attempt - 1)):
                break
        with self.db.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(
                attempts=attempt, state="sent" if error is None else "failed",
                sent_at=utcnow() if error is None else None, last_error=error))
        if error is not None:
            log.error("alert %s could not be delivered after %d attempts: %s", row["kind"],
                      attempt, error)


def failures_between(since: dt.datetime, until: dt.datetime):
    """(id, type, finished_at) of the failures finished in (since, until], oldest first. The
    status is tested inside a CASE, which no index serves, so the planner reads the few rows
    finished since the last pass through `ix_tasks_finished`: with a plain `status =
    'FAILURE'` SQLite chose the status index and read every failure ever recorded (0.4 s
    of CPU per pass at 1,000,000 tasks)."""
    return (select(tasks.c.id, tasks.c.type, tasks.c.finished_at)
            .where(tasks.c.finished_at > since, tasks.c.finished_at <= until,
                   case((tasks.c.status == FAILURE, 1), else_=0) == 1)
            .order_by(tasks.c.finished_at))


def overdue_tasks(db: Engine | Connection, settings, now: dt.datetime) -> list[dict]:
    """Runs older than their type's timeout (plus the watchdog's own delay): the watchdog
    should have stopped them, so something is wrong with their worker. `now` from the
    shared clock, which stamped their start."""
    slack = 2 * settings.heartbeat_interval
    with reading(db) as conn:
        running = conn.execute(select(tasks.c.id, tasks.c.type, tasks.c.started_at)
                               .where(tasks.c.status == STARTED)).all()
    late = []
    for task_id, task_type, started in running:
        if started is None:
            continue
        limit = settings.timeout_for(task_type)
        ran = (now - started).total_seconds()
        if ran > limit + slack:
            late.append({"task_id": task_id, "type": task_type,
                         "running_seconds": round(ran, 1), "timeout": limit})
    return late


def recent(db: Engine, limit: int = 50) -> list[dict]:
    with reading(db) as conn:
        rows = conn.execute(select(alerts).order_by(desc(alerts.c.id)).limit(limit)).mappings().all()
    return [{"id": r["id"], "at": iso(r["at"]), "kind": r["kind"], "key": r["key"],
             "message": r["message"], "details": r["details"], "state": r["state"],
             "attempts": r["attempts"], "last_error": r["last_error"],
             "sent_at": iso(r["sent_at"]) if r["sent_at"] else None} for r in rows]

