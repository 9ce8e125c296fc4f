"""The statements task tracking runs for every task, written once per database and run on
the DB-API cursor.

Building and caching a SQLAlchemy statement cost a worker more than the database's own
work (78 % of a no-op task went to `update().values(...).returning(...)` and the history
insert), and on SQLite every microsecond a writer spends between its first statement and
COMMIT holds the one write lock all worker processes queue for. Each statement here has a
fixed column set, so the driver sees the same text every time (psycopg prepares it).

Values are written the way the SQLAlchemy table types write them (see jobs/models.py), so
both paths read each other's rows: UTC times, SQLite's `YYYY-MM-DD HH:MM:SS.ffffff` text,
JSON as text.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine, TextClause

from jobs import task_stats
from jobs.models import FINAL_STATUSES

T = TypeVar("T")

COLUMNS = ("id", "type", "owner", "params", "status", "progress_done", "progress_total",
           "result", "error", "attempts", "max_attempts", "worker", "terminate", "parent_id",
           "enqueued_at", "started_at", "finished_at", "updated_at", "version", "priority")
_JSON = ("params", "result", "error")
_TIMES = ("enqueued_at", "started_at", "finished_at", "updated_at")
_HISTORY = ("task_id", "at", "status", "attempt", "worker", "detail")
# What a worker's own change may set; the rest of the row stays as its claim returned it.
_MUTABLE = ("status", "progress_done", "progress_total", "result", "error", "finished_at")


class TaskSQL:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            p = j = lambda name: f":{name}"  # noqa: E731
        else:
            p = lambda name: f"%({name})s"  # noqa: E731
            j = lambda name: f"%({name})s::json"  # noqa: E731
        returning = ", ".join(COLUMNS)
        self._insert_task = (
            f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ("
            + ", ".join(j(c) if c in _JSON else p(c) for c in COLUMNS) + ")")
        self._insert_history = (f"INSERT INTO task_history ({', '.join(_HISTORY)}) VALUES ("
                                + ", ".join(p(c) for c in _HISTORY) + ")")
        self._claim = (
            f"UPDATE tasks SET status = 'STARTED', attempts = attempts + 1, version = version + 1, "
            f"worker = {p('worker')}, started_at = {p('now')}, updated_at = {p('now')}, "
            f"finished_at = NULL, error = NULL "
            f"WHERE id = {p('id')} AND status IN ('PENDING', 'RETRY') RETURNING {returning}")
        # Compare-and-set on the version the worker last saw: when it matches, the row is
        # exactly the worker's copy, so writing the copy's fields back changes nothing else.
        sets = ", ".join(f"{c} = {j(c) if c in _JSON else p(c)}" for c in _MUTABLE)
        self._advance = (f"UPDATE tasks SET {sets}, updated_at = {p('updated_at')}, "
                         f"version = version + 1 WHERE id = {p('id')} AND version = {p('version')}")
        # PostgreSQL: a change and its timeline row in one statement (a round trip each cost
        # the worker and the server more than the row itself). SQLite runs two statements
        # in-process, where a statement costs no round trip.
        self._claim_logged = self._advance_logged = None
        if not self.sqlite:
            self._claim_logged = (
                f"WITH c AS ({self._claim}), h AS (INSERT INTO task_history "
                f"({', '.join(_HISTORY)}) SELECT id, {p('now')}, status, attempts, worker, NULL "
                f"FROM c) SELECT {returning} FROM c")
            self._advance_logged = (
                f"WITH u AS ({self._advance} RETURNING 1) INSERT INTO task_history "
                f"({', '.join(_HISTORY)}) SELECT "
                + ", ".join(p(f"h_{c}") for c in _HISTORY) + " FROM u")
        self._compiled: dict[TextClause, Any] = {}
        self._local = threading.local()
        database = engine.url.database if self.sqlite else None
        self._lock_path = (f"{database}.writers" if database and database != ":memory:"
                           and not database.startswith("file:") else None)
        # (pid, file, lock): one per process; the lock orders this process's threads (a
        # file lock is held per process, not per thread).
        self._turn: tuple[int, Any, threading.Lock] | None = None

    # -- connections: one per thread, kept (a pool checkout costs a ping on PostgreSQL) --
    def run(self, work: Callable[[Any], T]) -> T:
        """Run `work(cursor)` in one transaction on this thread's connection."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # new thread, or a forked child
            local.conn, local.pid = self.engine.raw_connection(), os.getpid()
        conn = local.conn
        try:
            with self._writers_in_turn():
                cursor = conn.cursor()
                try:
                    result = work(cursor)
                finally:
                    cursor.close()
                conn.commit()
            return result
        except BaseException:
            local.pid = None
            try:
                conn.rollback()
                conn.close()
            except Exception:  # noqa: BLE001 - the connection is gone; the original error tells
                conn.invalidate()
            raise

    @contextlib.contextmanager
    def _writers_in_turn(self):
        """On SQLite, the workers' transactions queue on a file lock for the database's one
        write lock. SQLite's own wait for it polls, sleeping 1, 2, 5, 10 ms...: with several
        worker processes writing a transaction per task, the lock sat free while they slept.
        The kernel hands a file lock to the next waiter the moment it is released. (Other
        writers, the web's, still meet SQLite's lock; this only orders the workers.)"""
        if self._lock_path is None:
            yield
            return
        turn = self._turn
        if turn is None or turn[0] != os.getpid():
            turn = self._turn = (os.getpid(), open(self._lock_path, "a"), threading.Lock())
        _pid, file, threads = turn
        with threads:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)

    # -- values in and out --
    def _time(self, value: dt.datetime | None) -> Any:
        if value is None or not self.sqlite:
            return value
        if value.tzinfo is not dt.UTC:
            value = value.astimezone(dt.UTC)
        # isoformat is a tenth of strftime's cost (several times per task)
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")

    @staticmethod
    def _json(value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def _out(self, row: dict) -> dict:
        return {c: (self._json(v) if c in _JSON else self._time(v) if c in _TIMES else v)
                for c, v in row.items()}

    def _in(self, values: Sequence) -> dict:
        row = dict(zip(COLUMNS, values))
        if self.sqlite:
            for c in _JSON:
                if isinstance(row[c], str):
                    row[c] = json.loads(row[c])
            for c in _TIMES:
                if row[c] is not None:
                    row[c] = dt.datetime.fromisoformat(row[c]).replace(tzinfo=dt.UTC)
            row["terminate"] = bool(row["terminate"])
        return row

    def _history(self, row: dict, at: dt.datetime, detail: str | None) -> dict:
        return {"task_id": row["id"], "at": self._time(at), "status": row["status"],
                "attempt": row["attempts"], "worker": row["worker"], "detail": detail}

    # -- the statements --
    def insert(self, cursor, rows: Iterable[dict], details: Iterable[str | None]) -> None:
        rows = list(rows)
        cursor.executemany(self._insert_task, [self._out(r) for r in rows])
        cursor.executemany(self._insert_history, [
            self._history(r, r["enqueued_at"], d) for r, d in zip(rows, details)])

    def claim(self, cursor, task_id: str, worker: str, now: dt.datetime) -> dict | None:
        params = {"id": task_id, "worker": worker, "now": self._time(now)}
        cursor.execute(self._claim_logged or self._claim, params)
        values = cursor.fetchone()
        if values is None:
            return None
        row = self._in(values)
        if self._claim_logged is None:
            cursor.execute(self._insert_history, self._history(row, now, None))
        return row

    def advance(self, cursor, row: dict, detail: str | None, history: bool) -> bool:
        """Write `row` (the worker's copy with its changes) if the record is still at
        `row["version"] - 1`; with `history`, add its timeline row, and for a final state
        its count in the stored stats."""
        return self.write_change(cursor, self.change(row, detail, history))

    def change(self, row: dict, detail: str | None, history: bool) -> tuple:
        """`advance`'s statements' parameters, made now: a value that cannot be stored (a
        result that is not JSON) fails here, in the caller, not in a later transaction."""
        params = {c: row[c] for c in _MUTABLE}
        params = self._out(params) | {"id": row["id"], "version": row["version"] - 1,
                                      "updated_at": self._time(row["updated_at"])}
        if not history:
            return params, None, None
        stats = task_stats.record_statement(row) if row["status"] in FINAL_STATUSES else None
        return params, self._history(row, row["updated_at"], detail), stats

    def write_change(self, cursor, change: tuple) -> bool:
        params, history, stats = change
        if history is not None and self._advance_logged is not None:
            cursor.execute(self._advance_logged,
                           params | {f"h_{k}": v for k, v in history.items()})
            if cursor.rowcount != 1:
                return False
        else:
            cursor.execute(self._advance, params)
            if cursor.rowcount != 1:
                return False
            if history is not None:
                cursor.execute(self._insert_history, history)
        if stats is not None:
            self._execute_clause(cursor, *stats)
        return True

    def _execute_clause(self, cursor, clause: TextClause, params: dict) -> None:
        """Run a SQLAlchemy text statement (compiled once) on the cursor."""
        compiled = self._compiled.get(clause)
        if compiled is None:
            compiled = self._compiled[clause] = clause.compile(dialect=self.engine.dialect)
        params = {k: self._time(v) if isinstance(v, dt.datetime) else v for k, v in params.items()}
        if compiled.positiontup:
            cursor.execute(compiled.string, [params[name] for name in compiled.positiontup])
        else:
            cursor.execute(compiled.string, params)
