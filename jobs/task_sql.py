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

import datetime as dt
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
# A change as PostgreSQL arrays take it: (column, type), the row's and its timeline's.
_CHANGED = (("id", "text"), ("version", "int"), ("status", "text"), ("progress_done", "int"),
            ("progress_total", "int"), ("result", "json"), ("error", "json"),
            ("finished_at", "timestamptz"), ("updated_at", "timestamptz"), ("detail", "text"))


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
        # Claims of several tasks in one statement (a worker's batch, jobs/execution.py).
        # SQLite must find them by id: its planner preferred the status index, which walks
        # every waiting task (5.5 ms a claim with 50,000 waiting, against 1.1 ms by id);
        # a unary + keeps that index out of its choice.
        ids = "(SELECT value FROM json_each(:ids))" if self.sqlite else "ANY(%(ids)s)"
        status = "+status" if self.sqlite else "status"
        self._claim = (
            f"UPDATE tasks SET status = 'STARTED', attempts = attempts + 1, version = version + 1, "
            f"worker = {p('worker')}, started_at = {p('now')}, updated_at = {p('now')}, "
            f"finished_at = NULL, error = NULL "
            f"WHERE id {'IN' if self.sqlite else '='} {ids} AND {status} IN ('PENDING', 'RETRY') "
            f"RETURNING {returning}")
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
            # Changes with their timeline rows (a worker's outcomes, one or several) in one
            # statement, one array per column; the ids it returns are those whose
            # compare-and-set held.
            arrays = ", ".join(f"%({c})s::{'text' if c in _JSON else t}[]" for c, t in _CHANGED)
            sets = ", ".join(f"{c} = x.{c}" + ("::json" if c in _JSON else "") for c in _MUTABLE)
            self._advance_logged = (
                f"WITH x AS (SELECT * FROM unnest({arrays}) AS x({', '.join(c for c, _ in _CHANGED)})), "
                f"u AS (UPDATE tasks t SET {sets}, updated_at = x.updated_at, version = t.version + 1 "
                f"FROM x WHERE t.id = x.id AND t.version = x.version "
                f"RETURNING t.id, t.updated_at, t.status, t.attempts, t.worker, x.detail), "
                f"h AS (INSERT INTO task_history ({', '.join(_HISTORY)}) SELECT * FROM u) "
                f"SELECT id FROM u")
        self._compiled: dict[TextClause, Any] = {}
        self._local = threading.local()

    # -- connections: one per thread, kept (a pool checkout costs a ping on PostgreSQL) --
    def run(self, work: Callable[[Any], T]) -> T:
        """Run `work(cursor)` in one transaction on this thread's connection."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # new thread, or a forked child
            local.conn, local.pid = self.engine.raw_connection(), os.getpid()
        conn = local.conn
        try:
            if self.sqlite:  # its compare-and-set reads and writes with no writer in between
                conn.dbapi_connection.take_turn()
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

    def claim(self, cursor, task_ids: list[str], worker: str, now: dt.datetime) -> list[dict]:
        """Start the tasks among `task_ids` that wait: their rows, with their timeline rows."""
        params = {"ids": json.dumps(task_ids) if self.sqlite else task_ids, "worker": worker,
                  "now": self._time(now)}
        cursor.execute(self._claim_logged or self._claim, params)
        rows = [self._in(values) for values in cursor.fetchall()]
        if self._claim_logged is None and rows:
            cursor.executemany(self._insert_history, [self._history(row, now, None) for row in rows])
        return rows

    def advance(self, cursor, row: dict, detail: str | None, history: bool) -> bool:
        """Write `row` (the worker's copy with its changes) if the record is still at
        `row["version"] - 1`; with `history`, add its timeline row, and for a final state
        its count in the stored stats."""
        return self.write_changes(cursor, [self.change(row, detail, history)])[0]

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

    def write_changes(self, cursor, changes: list[tuple]) -> list[bool]:
        """Write `change()`s: for each, whether its compare-and-set held. The stats of those
        that did are added together (a batch of like tasks: one row's count, once)."""
        if not changes:
            return []
        if self._advance_logged is not None and all(h is not None for _p, h, _s in changes):
            columns = {c: [params[c] for params, _h, _s in changes] for c, _t in _CHANGED if c != "detail"}
            columns["detail"] = [history["detail"] for _p, history, _s in changes]
            cursor.execute(self._advance_logged, columns)
            held = {task_id for (task_id,) in cursor.fetchall()}
            written = [params["id"] in held for params, _h, _s in changes]
        else:
            written = []
            for params, history, _stats in changes:
                cursor.execute(self._advance, params)
                written.append(cursor.rowcount == 1)
                if written[-1] and history is not None:
                    cursor.execute(self._insert_history, history)
        for clause, values in _summed(stats for (_p, _h, stats), ok in zip(changes, written)
                                      if ok and stats is not None):
            self._execute_clause(cursor, clause, values)
        return written

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


def _summed(statements: Iterable[tuple[TextClause, dict]]) -> list[tuple[TextClause, dict]]:
    """Stats statements alike but for their count `n` (like tasks finished in the same
    minute) as one each, with the counts added."""
    summed: dict[tuple, tuple[TextClause, dict]] = {}
    for clause, values in statements:
        key = (clause, *sorted((k, v) for k, v in values.items() if k != "n"))
        seen = summed.get(key)
        summed[key] = (clause, values if seen is None else {**values, "n": seen[1]["n"] + values["n"]})
    return list(summed.values())
