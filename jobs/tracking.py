"""Task records: the one place a task's state changes, and the event that tells everyone.

`transition()` is a compare-and-set: it changes a record only from the states (and, for a
worker, the attempt) the caller expects, so a late worker, a reaper and a revoke can race
without one overwriting the other. Every change it makes is published on the event bus.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from jobs import task_stats
from jobs.db import reading
from jobs.events import EventBus
from jobs.models import (FAILURE, FINAL_STATUSES, PENDING, STARTED, SUCCESS, WAITING_STATUSES, iso,
                         task_history, tasks, utcnow)
from jobs.task_types import priority_of
from jobs.task_sql import TaskSQL

log = logging.getLogger("jobs.tracking")


# Seconds a change that makes a task wait (its creation, a RETRY) waits for its event to
# leave before the caller queues the task's message: see create_many.
CREATION_FLUSH_TIMEOUT = 1.0
# A worker's outcome waits at most this long for its process's next transaction (the next
# claim) before a thread of its own writes it: a group commit. See Tracker.finish.
OUTCOME_DELAY = 0.005
# When the queue writes them (Tracker.carry_outcomes), how often the outcome thread looks
# for any left over: a worker parked (drained) or skipping paused tasks claims nothing.
CARRIED_CHECK = 0.1


def new_task_id() -> str:
    return secrets.token_hex(12)


def task_view(row: Mapping[str, Any], *, with_result: bool = True) -> dict[str, Any]:
    """A record as the API and the event stream show it."""
    view = {
        "task_id": row["id"],
        "type": row["type"],
        "owner": row["owner"],
        "status": row["status"],
        "progress": {"done": row["progress_done"], "total": row["progress_total"]},
        "error": row["error"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "worker": row["worker"],
        "terminate": row["terminate"],
        "parent_id": row["parent_id"],
        "priority": row["priority"],
        "params": row["params"],
        "enqueued_at": iso(row["enqueued_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "updated_at": iso(row["updated_at"]),
        "version": row["version"],
    }
    if with_result:
        view["result"] = row["result"]
    return view


def _detail(row: Mapping[str, Any]) -> str | None:
    if row["error"]:
        return f"{row['error'].get('type')}: {row['error'].get('message')}"[:500]
    if row["terminate"] and row["status"] == "REVOKED":
        return "terminate requested"
    return None


class Tracker:
    def __init__(self, db: Engine, bus: EventBus, now: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.bus = bus
        # The clock every time of a record is written with (enqueued, started, updated,
        # finished, and its timeline): the shared one of jobs/clock.py in Redis mode, so the
        # sweep (jobs/reaper.py) and the relay, which compare these times with that clock,
        # compare like with like whichever machine wrote them. Final states get their
        # `finished_at` here too, so a run's duration is measured on one clock.
        self.now = now
        self.sql = TaskSQL(db)
        self._statements: dict[tuple, Any] = {}
        self._outcomes = _Outcomes(self)

    def create(self, *, task_type: str, owner: str, params: dict, max_attempts: int,
               task_id: str | None = None, parent_id: str | None = None,
               announce: bool = True) -> dict | None:
        """Record a new PENDING task. Returns None when `task_id` is already taken."""
        try:
            return self.create_many([dict(type=task_type, owner=owner, params=params, id=task_id,
                                          parent_id=parent_id)], max_attempts, announce=announce)[0]
        except IntegrityError:
            if task_id is None:
                raise
            return None  # a chosen id (a periodic run) that another process recorded first

    def create_many(self, specs: list[dict], max_attempts: int, *,
                    announce: bool = True) -> list[dict]:
        """Record new PENDING tasks in one transaction (all or none); returns their views.

        Each spec has type, owner, params, and optionally id and parent_id. With `announce`
        false the caller sends the creation events itself, with the queue's messages
        (Runtime.enqueue_created): one round trip, and no wait for the sender thread.
        """
        if not specs:
            return []
        now = self.now()
        rows = [dict(id=s.get("id") or new_task_id(), type=s["type"], owner=s["owner"],
                     params=s["params"], status=PENDING, progress_done=0, progress_total=0,
                     result=None, error=None, attempts=0, max_attempts=max_attempts,
                     worker=None, terminate=False, parent_id=s.get("parent_id"),
                     enqueued_at=now, started_at=None, finished_at=None, updated_at=now,
                     version=1, priority=priority_of(s["type"])) for s in specs]
        details = [f"retry of {r['parent_id']}" if r["parent_id"] else None for r in rows]
        try:
            self.sql.run(lambda cursor: self.sql.insert(cursor, rows, details))
        except self.db.dialect.loaded_dbapi.IntegrityError as exc:
            raise IntegrityError("INSERT INTO tasks", None, exc) from exc
        if not announce:
            return [task_view(r) for r in rows]
        self._publish_many(rows)
        # Sent before the caller queues the messages: a worker's claim (version 2) sent
        # first would make the bus refuse the creation (version 1) as outdated, and boards
        # would never see the task waiting. Bounded: the relay covers a Redis that is away.
        self.bus.flush(CREATION_FLUSH_TIMEOUT)
        return [task_view(r) for r in rows]

    def discard(self, task_ids: list[str]) -> bool:
        """Take back records just created whose messages the queue refused: all of them, or,
        when any has moved on (its message reached the queue after all and a worker claimed
        it), none. A refused request then leaves no task behind, not a FAILURE nobody asked
        for; the sweep never meets a record it would queue once Redis is back behind the
        client's own retry. True when they are gone.

        Their creation events usually failed with the queue (same Redis); one that left
        just before Redis went shows a board a waiting row until its next reload.
        """
        if not task_ids:
            return True
        with self.db.begin() as conn:
            gone = conn.execute(tasks.delete().where(
                tasks.c.id.in_(task_ids), tasks.c.status == PENDING, tasks.c.version == 1)).rowcount
            if gone != len(task_ids):
                conn.rollback()
                return False
            conn.execute(task_history.delete().where(task_history.c.task_id.in_(task_ids)))
        return True

    def claim(self, task_id: str, worker: str) -> dict | None:
        """Start a waiting task on `worker`: the record as a row, or None when it is not
        waiting (revoked, finished, or claimed by another worker)."""
        return self.claim_many([task_id], worker).get(task_id)

    def claim_many(self, task_ids: list[str], worker: str) -> dict[str, dict]:
        """Start waiting tasks on `worker`, in one transaction: {task id: row} of those
        claimed (the others were not waiting). The outcomes this process has finished and
        not yet written go in the same transaction."""
        now = self.now()
        outcomes = self._outcomes.take()

        def work(cursor) -> tuple[list[bool], list[dict]]:
            return self._write_outcomes(cursor, outcomes), self.sql.claim(cursor, task_ids, worker, now)
        try:
            written, rows = self.sql.run(work)
        except BaseException:
            self._outcomes.give_back(outcomes)
            raise
        finally:
            self._outcomes.landed(outcomes)
        self._outcomes_written(outcomes, written, also=rows, soon=self._outcomes.carried)
        return {row["id"]: row for row in rows}

    # -- outcomes: a group commit per worker process --
    def finish(self, row: dict, status: str, **fields: Any) -> None:
        """The running worker's outcome of a task it claimed (a final state).

        Written with this process's next transaction (its next claim), or by the outcome
        thread within OUTCOME_DELAY: one commit for several tasks instead of one each (on
        SQLite every commit holds the one write lock all workers queue for). Its event
        leaves after that commit. A process killed before it leaves the record STARTED on
        a dead worker: the reaper recovers it as a lost run, as it does a run killed a
        moment earlier, and task bodies are written to be run again (posts are upserts).
        """
        now = self.now()
        new = {**row, **self._finished(status, now, fields), "status": status, "updated_at": now,
               "version": row["version"] + 1}
        change = self.sql.change(new, _detail(new), history=True)  # a bad value fails here
        self._outcomes.add((new, change, row, fields))

    def carry_outcomes(self) -> None:
        """From now on the queue's dequeue sees to this process's outcomes (jobs/queue.py):
        when a message is waiting, its claim writes them; when none is, it has them written
        at once, before waiting for work. The outcome thread is then not woken for each
        task (a wake-up per task cost as much CPU as the write), and no outcome is written
        in a transaction of its own while work is queued; the thread only writes what is
        left over for CARRIED_CHECK."""
        self._outcomes.carried = True

    def outcomes_waiting(self) -> bool:
        return self._outcomes.waiting()

    def write_outcomes_soon(self) -> None:
        """Have the outcome thread write this process's pending outcomes now (a worker about
        to wait for work); it retries and reports a failure."""
        self._outcomes.due_now()

    def flush_outcomes(self) -> None:
        """Write this process's pending outcomes now (a worker stopping, a test); returns
        when every outcome finished before the call is written, those another thread (the
        outcome thread, a claim) was writing included."""
        outcomes = self._outcomes.take()
        if outcomes:
            try:
                written = self.sql.run(lambda cursor: self._write_outcomes(cursor, outcomes))
            except BaseException:
                self._outcomes.give_back(outcomes)
                raise
            finally:
                self._outcomes.landed(outcomes)
            self._outcomes_written(outcomes, written)
        self._outcomes.wait_landed()

    def _write_outcomes(self, cursor, outcomes: list[tuple]) -> list[bool]:
        return self.sql.write_changes(cursor, [change for _new, change, _row, _f in outcomes])

    def _outcomes_written(self, outcomes: list[tuple], written: list[bool],
                          also: list[dict] = (), soon: bool = False) -> None:
        done = [new for (new, *_), ok in zip(outcomes, written) if ok]
        if done or also:
            # `soon`: a claim's events go with the worker's next dequeue (jobs/queue.py).
            self._publish_many(done + list(also), soon=soon)
        for new in done:
            self._log(new)
        for (new, _change, row, fields), ok in zip(outcomes, written):
            if not ok:
                # Someone else changed the record since our copy: decide on its current state.
                self._transition_row(row["id"], new["status"], expect=(STARTED,),
                                     attempt=row["attempts"], **fields)

    def advance(self, row: dict, status: str, **fields: Any) -> dict | None:
        """The running worker's own change to a task it claimed (progress or outcome).

        `row` is the worker's copy of the record. Returns the new copy, or None when the
        record was taken from the worker (revoked, reaped, handed to another attempt).
        """
        now = self.now()
        new = {**row, **self._finished(status, now, fields), "status": status, "updated_at": now,
               "version": row["version"] + 1}
        history = status != row["status"]
        if not self.sql.run(lambda cursor: self.sql.advance(cursor, new, _detail(new), history)):
            # Someone else changed the record since our copy: decide on its current state.
            return self._transition_row(row["id"], status, expect=(STARTED,),
                                        attempt=row["attempts"], **fields)
        self._publish(new)
        self._log(new)
        return new

    def transition(self, task_id: str, status: str, *, expect: Iterable[str],
                   attempt: int | None = None, **fields: Any) -> dict | None:
        """Move a task to `status` if it is in one of `expect` (and at `attempt`, if given).

        Returns the new record, or None when the record was not in an expected state.
        """
        row = self._transition_row(task_id, status, expect=expect, attempt=attempt, **fields)
        return task_view(row) if row is not None else None

    def _transition_row(self, task_id: str, status: str, *, expect: Iterable[str],
                        attempt: int | None = None, **fields: Any) -> dict | None:
        expect = tuple(expect)
        now = self.now()
        fields = self._finished(status, now, fields)
        params = {"_id": task_id, "_status": status, "_now": now, **fields}
        if attempt is not None:
            params["_attempt"] = attempt
        with self.db.begin() as conn:
            row = conn.execute(self._statement(expect, attempt is not None, tuple(sorted(fields))),
                               params).mappings().first()
            if row is None:
                return None
            if set(expect) != {status}:  # a change of state, not a progress report
                conn.execute(insert(task_history).values(
                    task_id=task_id, at=now, status=status, attempt=row["attempts"],
                    worker=row["worker"], detail=_detail(row)))
                if status in FINAL_STATUSES:
                    task_stats.record(conn, row)
        row = dict(row)
        self._publish(row)
        if status in WAITING_STATUSES:
            # A RETRY is queued again by the caller as soon as this returns, and may be
            # claimed at once: sent first, as a creation is (see create_many).
            self.bus.flush(CREATION_FLUSH_TIMEOUT)
        self._log(row)
        return row

    @staticmethod
    def _finished(status: str, now: dt.datetime, fields: dict[str, Any]) -> dict[str, Any]:
        """A final state's `finished_at`: now, unless the caller gave the moment."""
        return {"finished_at": now, **fields} if status in FINAL_STATUSES else fields

    def _statement(self, expect: tuple, with_attempt: bool, names: tuple) -> Any:
        """One built statement per shape of change, reused (building one is the cost)."""
        key = (expect, with_attempt, names)
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = update(tasks).where(tasks.c.id == bindparam("_id"), tasks.c.status.in_(expect))
            if with_attempt:
                stmt = stmt.where(tasks.c.attempts == bindparam("_attempt"))
            stmt = self._statements[key] = stmt.values(
                status=bindparam("_status"), updated_at=bindparam("_now"),
                version=tasks.c.version + 1,
                **{n: bindparam(n, type_=tasks.c[n].type) for n in names},
            ).returning(*tasks.c)
        return stmt

    # -- many at once (bulk actions): one statement each, and still one event per change --
    def transition_many(self, task_ids: list[str], status: str, *, expect: Iterable[str],
                        **fields: Any) -> list[dict]:
        """Move every listed task that is in one of `expect` to `status`; the moved records."""
        if not task_ids:
            return []
        now = self.now()
        fields = self._finished(status, now, fields)
        stmt = (update(tasks).where(tasks.c.id.in_(task_ids), tasks.c.status.in_(tuple(expect)))
                .values(status=status, updated_at=now, version=tasks.c.version + 1, **fields)
                .returning(*tasks.c))
        with self.db.begin() as conn:
            rows = conn.execute(stmt).mappings().all()
            if rows:
                conn.execute(insert(task_history), [
                    dict(task_id=r["id"], at=now, status=status, attempt=r["attempts"],
                         worker=r["worker"], detail=_detail(r)) for r in rows])
                if status in FINAL_STATUSES:
                    for row in rows:
                        task_stats.record(conn, row)
        self._publish_many(rows)
        return [task_view(r) for r in rows]

    def timeline(self, task_id: str) -> list[dict]:
        with reading(self.db) as conn:
            rows = conn.execute(select(task_history).where(task_history.c.task_id == task_id)
                                .order_by(task_history.c.id)).mappings().all()
        return [{"at": iso(r["at"]), "status": r["status"], "attempt": r["attempt"],
                 "worker": r["worker"], "detail": r["detail"]} for r in rows]

    def retries_of(self, task_id: str) -> list[str]:
        """Ids of the tasks queued as retries of this one, oldest first."""
        with reading(self.db) as conn:
            return list(conn.execute(select(tasks.c.id).where(tasks.c.parent_id == task_id)
                                     .order_by(tasks.c.enqueued_at)).scalars())

    def get(self, task_id: str) -> dict | None:
        with reading(self.db) as conn:
            row = conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first()
        return task_view(row) if row else None

    def _publish(self, row: Mapping[str, Any]) -> None:
        self._publish_many([row])

    def _publish_many(self, rows: list[Mapping[str, Any]], soon: bool = False) -> None:
        # Results can be large; subscribers fetch them from the record when they want them.
        # Each event carries the record's version: the bus drops one older than what it
        # has already sent for the task, so a late publisher never rolls a board back. An
        # event that cannot be sent is not lost: the relay (jobs/relay.py) finds records
        # whose version is ahead of what the bus has sent, and sends them.
        self.bus.publish_tasks([task_view(r, with_result=False) for r in rows], soon=soon)

    @staticmethod
    def _log(row: Mapping[str, Any]) -> None:
        status, task_id = row["status"], row["id"]
        if status == SUCCESS:
            log.info("Task %s completed successfully", task_id)
        elif status == FAILURE:
            error = row["error"] or {}
            log.warning("Task %s failed (%s): %s", task_id, error.get("type"), error.get("message"))


class _Outcomes:
    """The outcomes a worker process has finished and not yet written, and the thread that
    writes them when no claim comes to take them within OUTCOME_DELAY."""

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._pending: list[tuple] = []
        self._due = 0.0  # when the oldest pending outcome must be written (monotonic)
        self._cond = threading.Condition()
        self._pid: int | None = None  # the process whose thread writes them
        self._failing = False
        self._writing = 0  # transactions holding outcomes, not yet over
        self._writes = threading.Condition()  # its own: `_cond` wakes the outcome thread alone
        self.carried = False  # see Tracker.carry_outcomes

    def add(self, outcome: tuple) -> None:
        with self._cond:
            if self._pid != os.getpid():  # first outcome, or a forked worker
                self._pid = os.getpid()
                self._pending = []
                threading.Thread(target=self._run, name="task-outcomes", daemon=True).start()
            if not self._pending:
                self._due = time.monotonic() + OUTCOME_DELAY
                if not self.carried:
                    self._cond.notify()  # only for the first: a wake-up per task costs CPU
            self._pending.append(outcome)

    def waiting(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[tuple]:
        if not self._pending:  # unlocked look: a claim with nothing due takes no lock
            return []
        with self._cond:
            taken, self._pending = self._pending, []
            if taken:  # counted before they leave `_pending`'s lock: a flush sees one or the other
                with self._writes:
                    self._writing += 1
        return taken

    def landed(self, taken: list[tuple]) -> None:
        """The transaction that took `taken` is over (written, or given back)."""
        if taken:
            with self._writes:
                self._writing -= 1
                self._writes.notify_all()

    def wait_landed(self) -> None:
        """Until no transaction holds outcomes: a stopping worker's outcome thread may be
        writing some, and would die with the process half-way."""
        with self._writes:
            self._writes.wait_for(lambda: not self._writing)

    def give_back(self, outcomes: list[tuple]) -> None:
        if outcomes:
            with self._cond:
                if not self._pending:
                    self._due = time.monotonic()
                self._pending[:0] = outcomes
                self._cond.notify()

    def due_now(self) -> None:
        with self._cond:
            if self._pending:
                self._due = time.monotonic()
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self.carried:
                    self._cond.wait_for(lambda: self._pending and self._due <= time.monotonic(),
                                        CARRIED_CHECK)
                    wait = self._due - time.monotonic() if self._pending else CARRIED_CHECK
                else:
                    self._cond.wait_for(lambda: self._pending)
                    wait = self._due - time.monotonic()
            if wait > 0:
                # A claim in this time writes them with its own; then we wait for the next.
                if not self.carried:
                    time.sleep(wait)
                continue
            try:
                self._tracker.flush_outcomes()
            except Exception as exc:  # noqa: BLE001 - kept, and written on the next try
                if not self._failing:
                    self._failing = True
                    log.warning("task outcomes cannot be written (%s); retrying", exc)
                time.sleep(0.5)
            else:
                if self._failing:
                    self._failing = False
                    log.info("task outcomes are written again")
