"""Everything a process needs to queue and run tasks, built once from Settings."""
from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from dataclasses import dataclass, field

import redis
from huey import crontab
from huey.api import Huey, TaskWrapper
from huey.storage import RedisPriorityQueue
from sqlalchemy import Engine

from jobs import faults, schedules, task_stats
from jobs.clock import Clock
from jobs.db import make_engine
from jobs.events import EventBus, MemoryEventBus, RedisEventBus
from jobs.execution import Executor
from jobs.models import FAILURE, FINAL_STATUSES, REVOKED, STARTED, WAITING_STATUSES
from jobs.outage import REDIS_ERRORS, redis_outage
from jobs.pause import PauseCache
from jobs.queue import QueueChoice, QueueStorage, choose_backend, make_huey, queued_ids
from jobs.settings import Settings
from jobs.task_types import NAMES, priority_of
from jobs.tasks import BODIES
from jobs.tracking import Tracker

log = logging.getLogger("jobs.runtime")


class QueueUnavailable(Exception):
    """The queue cannot take tasks now. Refused before recording while Redis is known to be
    down; a task the queue refused after it was recorded is taken back (no record is left)."""


class NotFound(Exception):
    pass


class NotRetryable(Exception):
    def __init__(self, record: dict) -> None:
        super().__init__(record["status"])
        self.record = record


class AlreadyFinished(Exception):
    def __init__(self, record: dict) -> None:
        super().__init__(record["status"])
        self.record = record


@dataclass
class Runtime:
    settings: Settings
    choice: QueueChoice
    db: Engine
    bus: EventBus
    tracker: Tracker
    huey: Huey
    executor: Executor
    redis_client: redis.Redis | None
    clock: Clock
    entries: dict[str, TaskWrapper] = field(default_factory=dict)
    # Embedded mode: set on enqueue so an idle in-process worker starts at once.
    wake: threading.Event = field(default_factory=threading.Event)

    @property
    def mode(self) -> str:
        return self.choice.mode

    def submit(self, task_type: str, owner: str, params: dict, *, task_id: str | None = None,
               parent_id: str | None = None) -> dict | None:
        """Record a task and queue it. None if `task_id` was already recorded."""
        self._check_queue()
        record = self.tracker.create(task_type=task_type, owner=owner, params=params,
                                     max_attempts=self.settings.task_max_attempts,
                                     task_id=task_id, parent_id=parent_id,
                                     announce=not self._announces_on_queue)
        if record is None:
            return None
        faults.point("after_record")
        try:
            with self._watching_redis():
                self.enqueue_created([record])
        except Exception as exc:
            self._refused([record], exc)
        if task_type == "content_generation":
            log.info("Content generation queued: %s", record["task_id"])
        else:
            log.info("%s queued: %s", task_type, record["task_id"])
        return record

    def submit_many(self, specs: list[dict]) -> list[dict]:
        """Record tasks ({type, owner, params} each) in one transaction and queue them in one
        round trip: all or none. If the queue refuses them, their records are taken back."""
        self._check_queue()
        records = self.tracker.create_many(specs, self.settings.task_max_attempts,
                                           announce=not self._announces_on_queue)
        faults.point("after_record")
        try:
            with self._watching_redis():
                self.enqueue_created(records)
        except Exception as exc:
            self._refused(records, exc)
        log.debug("%d task(s) queued in one batch", len(records))
        return records

    @property
    def _announces_on_queue(self) -> bool:
        """Whether new tasks' creation events travel with their queue messages (Redis)."""
        return (isinstance(self.bus, RedisEventBus)
                and isinstance(self.huey.storage, RedisPriorityQueue))

    def enqueue_created(self, records: list[dict]) -> None:
        """Queue tasks just recorded (by create/create_many with `announce` as
        `_announces_on_queue` says). On Redis, all or none: their creation events and
        messages go in one atomic step, events first. The embedded queue takes them one by
        one; one refused half-way (a full disk) leaves the rest waiting until the reaper's
        stranded-task sweep queues them again."""
        messages = [self.entries[r["type"]].s(r["task_id"], id=r["task_id"],
                                              priority=priority_of(r["type"])) for r in records]
        storage = self.huey.storage
        if self._announces_on_queue:
            # Huey's own layout of the sorted set: an 8-byte microsecond prefix keeps messages
            # in order within a priority; the score is the negated priority.
            first = int(time.time() * 1e6)
            self.bus.send_created(
                [{k: v for k, v in r.items() if k != "result"} for r in records],
                storage.conn, storage.queue_key,
                [(struct.pack(">Q", first + i) + self.huey.serialize_task(m), -(m.priority or 0))
                 for i, m in enumerate(messages)])
        else:
            for message in messages:
                self.huey.enqueue(message)
        self.wake.set()

    def enqueue_recorded(self, record: dict) -> None:
        """Queue a task just recorded; if the queue refuses it, its record is taken back."""
        try:
            self.enqueue(record["task_id"], record["type"])
        except Exception as exc:
            self._refused([record], exc)

    def _refused(self, records: list[dict], exc: Exception) -> None:
        """The queue refused records just made (the first request to meet an outage): take
        them back and raise QueueUnavailable, so the client's 503 leaves nothing behind.
        If one has already been claimed, the messages did reach the queue (the reply was
        what got lost): the tasks stand, and the caller answers as for any queued task."""
        if self.tracker.discard([r["task_id"] for r in records]):
            raise QueueUnavailable(str(exc)) from exc
        log.warning("the queue answered with an error (%s) but took %d task(s): they run",
                    exc, len(records))

    def _check_queue(self) -> None:
        """While Redis is known to be down, refuse at once instead of recording a task that
        could not be queued; one PING tells whether it is back."""
        if self.redis_client is None or not redis_outage.down:
            return
        try:
            with redis_outage.watch():
                self.redis_client.ping()
        except REDIS_ERRORS as exc:
            raise QueueUnavailable(redis_outage.describe() or str(exc)) from None

    def enqueue(self, task_id: str, task_type: str) -> None:
        # The message carries only the id; parameters live in the record.
        with self._watching_redis():
            self.huey.enqueue(self.entries[task_type].s(task_id, id=task_id,
                                                         priority=priority_of(task_type)))
        self.wake.set()

    def _watching_redis(self):
        """Calls to the queue report to the outage tracker in Redis mode."""
        return redis_outage.watch() if self.redis_client is not None else contextlib.nullcontext()

    def queued_ids(self) -> set[str]:
        with self._watching_redis():
            return queued_ids(self.huey)

    def revoke(self, task_id: str, terminate: bool) -> dict:
        moved = self.tracker.transition(task_id, REVOKED, expect=(*WAITING_STATUSES, STARTED),
                                        terminate=terminate)
        if moved is not None:
            log.info("Task %s revoked%s", task_id, " (terminate)" if terminate else "")
            return moved
        record = self.tracker.get(task_id)
        if record is None:
            raise NotFound(task_id)
        if record["status"] in FINAL_STATUSES:
            raise AlreadyFinished(record)
        return self.revoke(task_id, terminate)  # it moved between our two reads

    def retry(self, task_id: str) -> dict:
        """Queue a new task with the parameters of a failed or revoked one, linked to it."""
        record = self.tracker.get(task_id)
        if record is None:
            raise NotFound(task_id)
        if record["status"] not in (FAILURE, REVOKED):
            raise NotRetryable(record)
        return self.submit(record["type"], record["owner"], record["params"], parent_id=task_id)

    def pending_count(self) -> int:
        with self._watching_redis():
            return self.huey.pending_count()

    def close(self) -> None:
        if self.redis_client is not None:
            self.redis_client.close()
        self.db.dispose()


def build_runtime(settings: Settings, *, worker_kind: str = "thread",
                  choice: QueueChoice | None = None) -> Runtime:
    faults.configure(settings.fault_injection)
    choice = choice or choose_backend(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = make_engine(settings.sql_url)
    if choice.mode == "redis":
        bus: EventBus = RedisEventBus(settings.redis_url, settings.events_max)
        # Short timeouts: while Redis is down, callers learn it within a second.
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
    else:
        bus = MemoryEventBus(settings.events_max)
        client = None
    clock = Clock(client)
    tracker = Tracker(db, bus, now=clock.now)
    huey = make_huey(settings, choice.mode)
    if isinstance(huey.storage, QueueStorage):
        # A worker's events ride with its dequeue, which also sees to its outcomes.
        if isinstance(bus, RedisEventBus):
            huey.storage.outgoing = bus.outgoing
        huey.storage.outcomes_waiting = tracker.outcomes_waiting
        huey.storage.write_outcomes = tracker.write_outcomes_soon
        tracker.carry_outcomes()
    runtime = Runtime(settings, choice, db, bus, tracker, huey, None, client, clock)  # type: ignore[arg-type]
    runtime.executor = Executor(settings, tracker, BODIES, runtime.enqueue, worker_kind)
    runtime.executor.paused = PauseCache(db, settings.pause_check_interval)
    runtime.executor.clock = clock.now
    if isinstance(huey.storage, QueueStorage):
        # Batches of short tasks: taken by one dequeue, claimed by one transaction.
        huey.storage.batch_plan = runtime.executor.batch_plan
        runtime.executor.upcoming = huey.storage.upcoming
        runtime.executor.return_buffered = huey.storage.return_buffered
    _register_tasks(runtime)
    return runtime


def _register_tasks(runtime: Runtime) -> None:
    huey, executor = runtime.huey, runtime.executor
    for task_type in NAMES:
        def entry(task_id: str, _type: str = task_type) -> None:
            executor.run(task_id, _type)
        entry.__name__ = entry.__qualname__ = task_type
        runtime.entries[task_type] = huey.task(name=task_type)(entry)

    huey.on_startup("executor")(executor.start_in_worker)

    schedules.register(huey, runtime.submit, runtime.db)

    # Stats read every level of the aggregates alike; folding keeps the rows a window reads
    # few. Untracked: it is quick, idempotent and serialised (see task_stats.fold).
    @huey.periodic_task(crontab(minute="*/10"), name="fold_task_stats")
    def fold_task_stats() -> None:
        task_stats.fold(runtime.db)
