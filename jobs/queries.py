"""Read-only questions the dashboard and the API ask of the task records."""
from __future__ import annotations

import datetime as dt
import logging
import os
import string
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, bindparam, desc, func, literal, select, tuple_, union_all

from jobs import task_stats
from jobs.db import reading
from jobs.models import FAILURE, STARTED, STATUSES, WAITING_STATUSES, UTCDateTime, from_iso, iso, tasks
from jobs.task_types import NAMES as TYPE_NAMES
from jobs.tracking import task_view
from jobs.workers import list_workers

ACTIVE_STATUSES = (*WAITING_STATUSES, STARTED)

log = logging.getLogger("jobs.queries")


# Lists leave out `result` (posts, reports): a list shows records, a task's page its result.
LIST_COLUMNS = tuple(c for c in tasks.c if c.name != "result")
COUNT_LIMIT = 1_000  # lists count their matches up to this, then say "more"
# An id prefix this long (1 in 256 random ids) is read and sorted from the primary key; a
# shorter one matches so often that walking each status newest-first finds a page sooner.
BY_ID = 2


@dataclass
class TaskPage:
    tasks: list[dict]
    total: int                # matches, counted up to COUNT_LIMIT
    total_exact: bool         # False: there are more than `total`
    older: str | None = None  # cursor for the next page (`before=`), None on the last
    newer: str | None = None  # cursor for the page before (`after=`), None on the first


def encode_cursor(task: Mapping) -> str:
    """A position in the newest-first order: `<enqueued_at in µs>-<task id>`."""
    enqueued = from_iso(task["enqueued_at"])
    return f"{round(enqueued.timestamp() * 1_000_000)}-{task['task_id']}"


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """ValueError when `cursor` is not one `encode_cursor` makes."""
    micros, sep, task_id = cursor.partition("-")
    if not sep or not task_id or len(task_id) > 64 or not micros.isdigit():
        raise ValueError(f"not a list position: {cursor[:80]!r}")
    return dt.datetime.fromtimestamp(int(micros) / 1_000_000, dt.UTC), task_id


def id_prefix_range(prefix: str) -> tuple:
    """Ids starting with `prefix`, as a range the primary key serves (hex ids are lower case)."""
    if all(ch in string.hexdigits for ch in prefix):
        prefix = prefix.lower()
    after = ord(prefix[-1]) + 1  # the least character past the prefix's last
    if 0xD800 <= after <= 0xDFFF:
        after = 0xE000  # no text holds a lone surrogate (the databases refuse one)
    if after > 0x10FFFF:  # nothing comes after the last character there is: no range
        return (tasks.c.id.startswith(prefix, autoescape=True),)
    return (tasks.c.id >= prefix, tasks.c.id < prefix[:-1] + chr(after))


def task_page(db: Engine, *, statuses: tuple[str, ...] | None = None, task_type: str | None = None,
              owner: str | None = None, id_prefix: str | None = None, page: int = 1,
              per_page: int = 50, before: str | None = None, after: str | None = None) -> TaskPage:
    """One page of tasks, newest first. `before`/`after`: cursors of the page's neighbours
    (keyset: the cost of a page does not grow with its depth); without them, `page` counts
    from the newest.

    Each status is read on its own, in index order, and the pieces merged: a range seek on
    an index of (…, status, enqueued_at, id) per status instead of sorting every match.
    """
    conditions = []
    if task_type:
        conditions.append(tasks.c.type == task_type)
    if owner:
        conditions.append(tasks.c.owner == owner)
    if id_prefix:
        conditions.extend(id_prefix_range(id_prefix))
    statuses = tuple(statuses) if statuses is not None else STATUSES
    if not statuses:
        return TaskPage([], 0, True)
    newest_first = after is None
    cursor, offset = [], 0
    if before is not None or after is not None:
        enqueued, task_id = decode_cursor(before if newest_first else after)
        key = tuple_(tasks.c.enqueued_at, tasks.c.id)
        position = tuple_(bindparam("ce", enqueued, type_=UTCDateTime), bindparam("ci", task_id))
        cursor.append(key < position if newest_first else key > position)
    else:
        offset = (page - 1) * per_page

    def ordered(columns):
        if newest_first:
            return desc(columns.enqueued_at), desc(columns.id)
        return columns.enqueued_at, columns.id

    wanted = offset + per_page + 1  # one more tells whether another page follows
    status_in = tasks.c.status.in_(statuses)
    if id_prefix:
        # Ids with a prefix come from the primary key's range (counting stops at the
        # limit); the status term is made an expression so no planner walks a status index.
        status_in = (tasks.c.status + "").in_(statuses)
    # The page's keys first (index-only where an index covers them), then its records.
    keys = (tasks.c.enqueued_at, tasks.c.id)
    if id_prefix and len(id_prefix) >= BY_ID:
        # Few ids share this prefix: sort them.
        query = (select(*keys).where(status_in, *conditions, *cursor)
                 .order_by(*ordered(tasks.c)).limit(wanted).offset(offset))
    else:
        pieces = [select(*keys).where(tasks.c.status == s, *conditions, *cursor)
                  .order_by(*ordered(tasks.c)).limit(wanted) for s in statuses]
        if len(pieces) == 1:
            query = pieces[0].offset(offset)
        else:
            merged = union_all(*(select(p.subquery()) for p in pieces)).subquery()
            query = select(merged).order_by(*ordered(merged.c)).limit(wanted).offset(offset)
    counted = (status_in,) if statuses != STATUSES else ()  # every status: no condition
    matching = select(literal(1)).select_from(tasks).where(*counted, *conditions).limit(COUNT_LIMIT + 1)
    with reading(db) as conn:
        ids = [task_id for _, task_id in conn.execute(query)]
        records = {r["id"]: r for r in conn.execute(
            select(*LIST_COLUMNS).where(tasks.c.id.in_(ids))).mappings()} if ids else {}
        total = conn.execute(select(func.count()).select_from(matching.subquery())).scalar_one()
    rows = [records[i] for i in ids if i in records]  # (pruned in between: left out)
    more = len(rows) > per_page
    views = [task_view(r, with_result=False) for r in rows[:per_page]]
    if not newest_first:
        views.reverse()
    # Read newest first, "more" lies on the older side; read from `after`, on the newer.
    has_older = more if newest_first else True
    has_newer = (before is not None or page > 1) if newest_first else more
    return TaskPage(
        views, min(total, COUNT_LIMIT), total <= COUNT_LIMIT,
        older=encode_cursor(views[-1]) if views and has_older else None,
        newer=encode_cursor(views[0]) if views and has_newer else None)


def _latest_of_type_query():
    columns = (tasks.c.id, tasks.c.status, tasks.c.enqueued_at, tasks.c.finished_at)
    pieces = [select(*columns).where(tasks.c.type == bindparam("task_type"), tasks.c.status == status)
              .order_by(desc(tasks.c.enqueued_at)).limit(1).subquery() for status in STATUSES]
    merged = union_all(*(select(p) for p in pieces)).subquery()
    return select(merged).order_by(desc(merged.c.enqueued_at)).limit(1)


# Built once: the health panel asks on every board page, and building the union of six
# subqueries cost more than running it.
LATEST_OF_TYPE = _latest_of_type_query()


def latest_of_type(conn, task_type: str):
    """The newest task of a type (id, status, enqueued_at, finished_at), or None: one index
    seek per status on (type, status, enqueued_at), not a sort of every task of the type."""
    return conn.execute(LATEST_OF_TYPE, {"task_type": task_type}).first()


def _active(query, owner: str | None):
    """`query` narrowed to the waiting and running tasks (of `owner`)."""
    query = query.where(tasks.c.status.in_(ACTIVE_STATUSES))
    return query if owner is None else query.where(tasks.c.owner == owner)


def _oldest_active(conn, columns, owner: str | None, limit: int):
    return conn.execute(_active(select(*columns), owner)
                        .order_by(tasks.c.enqueued_at).limit(limit)).mappings().all()


def active_tasks(db: Engine, owner: str | None = None) -> list[dict]:
    """The waiting and running tasks, as full records (without results)."""
    with reading(db) as conn:
        rows = _oldest_active(conn, LIST_COLUMNS, owner, ACTIVE_LIMIT_MAX)
    return [task_view(r, with_result=False) for r in rows]


# How many tasks `GET /api/tasks/active` lists unless asked for more (at most ACTIVE_LIMIT_MAX):
# a deep backlog lists thousands, and encoding them was the biggest request of a loaded server.
ACTIVE_LIMIT, ACTIVE_LIMIT_MAX = 100, 1_000
# What `GET /api/tasks/active` shows of a task. Not the parameters: a busy queue holds
# hundreds of generations whose parameters carry a book each, and decoding them only to
# drop them was most of a loaded web process's CPU.
ACTIVE_SUMMARY_COLUMNS = tuple(tasks.c[name] for name in (
    "id", "type", "worker", "status", "progress_done", "progress_total", "owner", "enqueued_at",
    "started_at"))


def active_summaries(db: Engine, mode: str, owner: str | None = None,
                     limit: int = ACTIVE_LIMIT) -> tuple[list[dict], int]:
    """The oldest `limit` waiting and running tasks as the active-task list shows them (the
    seed's keys: `type` is the queue `mode`, `name` the task type), and how many there are
    in all."""
    with reading(db) as conn:
        rows = _oldest_active(conn, ACTIVE_SUMMARY_COLUMNS, owner, limit)
        total = (len(rows) if len(rows) < limit else
                 conn.execute(_active(select(func.count()), owner)).scalar_one())
    return [{"task_id": r["id"], "type": mode, "name": r["type"], "worker": r["worker"],
             "status": r["status"],
             "progress": {"done": r["progress_done"], "total": r["progress_total"]},
             "owner": r["owner"], "enqueued_at": iso(r["enqueued_at"]),
             "started_at": iso(r["started_at"])} for r in rows], total


# One count per task type and status not final, in one statement: each reads a range of the
# (type, status, ...) index alone. A GROUP BY over the status index read every row of a deep
# backlog (50,000 waiting tasks: 42 -> 4.6 ms on SQLite), on every health report, stats and
# metrics request and board page.
_UNFINISHED = tuple((task_type, status) for task_type in TYPE_NAMES for status in ACTIVE_STATUSES)
_COUNT_EACH = tuple(
    select(func.count()).select_from(tasks)
    .where(tasks.c.type == task_type, tasks.c.status == status).scalar_subquery()
    for task_type, status in _UNFINISHED)
_COUNT_UNFINISHED = select(*_COUNT_EACH)


# A count of this many unfinished tasks or more is given again for REUSE x its time (_Counts).
DEEP_BACKLOG, REUSE = 10_000, 20


class _Counts:
    """The last count of unfinished tasks, per database.

    Counting reads an index entry per unfinished task (with 50,000 waiting, 4-5 ms on SQLite
    and 13-25 ms on PostgreSQL), and every health report, stats and metrics request and board
    page asks. Where the last count found a deep backlog (DEEP_BACKLOG or more), it is given
    again for REUSE times as long as it took; the first call after that starts a new count in
    a thread of its own and is given the last one. So counting takes about 1/REUSE of a thread
    at most, and a number given is at most that much older than its count. Below DEEP_BACKLOG
    every call counts, exactly."""

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._last: weakref.WeakKeyDictionary[Engine, tuple] = weakref.WeakKeyDictionary()
        self._counting: set[int] = set()  # ids of the engines being counted in the background
        self._lock = threading.Lock()
        self._failing = False

    def get(self, conn: Connection) -> dict[tuple[str, str], int]:
        reused = self.reused(conn.engine)
        return self._count(conn) if reused is None else reused

    def reused(self, engine: Engine) -> dict[tuple[str, str], int] | None:
        """The last count when it may be given again (a deep backlog, counted lately),
        starting a recount in the background when it is due; None: count now, and give
        the figures to `counted`."""
        if self._pid != os.getpid():  # a forked worker: a counting thread stayed behind
            self._start()
        last = self._last.get(engine)
        if last is None:
            return None
        counts, at, took = last
        if sum(counts.values()) < DEEP_BACKLOG:
            return None
        if time.monotonic() - at > REUSE * took:
            with self._lock:
                start = id(engine) not in self._counting
                self._counting.add(id(engine))
            if start:
                threading.Thread(target=self._recount, args=(engine,), daemon=True,
                                 name="unfinished-count").start()
        return counts

    def counted(self, engine: Engine, figures, took: float) -> dict[tuple[str, str], int]:
        """Remember a count: the figures of `_COUNT_EACH`'s columns, read in whatever
        statement, and how long that took."""
        counts = {pair: n for pair, n in zip(_UNFINISHED, figures) if n}
        self._last[engine] = (counts, time.monotonic(), took)
        return counts

    def _count(self, conn: Connection) -> dict[tuple[str, str], int]:
        started = time.monotonic()
        figures = conn.execute(_COUNT_UNFINISHED).one()
        return self.counted(conn.engine, figures, time.monotonic() - started)

    def _recount(self, engine: Engine) -> None:
        try:
            with reading(engine) as conn:
                self._count(conn)
            if self._failing:
                self._failing = False
                log.info("unfinished tasks are counted again")
        except Exception as exc:  # noqa: BLE001 - the last count is given until one succeeds
            if not self._failing:
                self._failing = True
                log.warning("unfinished tasks cannot be counted (%s); the last count is shown", exc)
        finally:
            with self._lock:
                self._counting.discard(id(engine))


_counts = _Counts()


def _unfinished(conn: Connection) -> dict[tuple[str, str], int]:
    """{(type, status): n} of the tasks not finished yet (the ones there are)."""
    return _counts.get(conn)


# When the first task of each waiting status was queued: one index seek each. (A bare
# min(enqueued_at) over both lets PostgreSQL walk the enqueued_at index from the oldest task
# of all, past every finished one.)
_FIRST_WAITING = tuple(
    select(tasks.c.enqueued_at).where(tasks.c.status == status)
    .order_by(tasks.c.enqueued_at).limit(1).scalar_subquery()
    for status in WAITING_STATUSES)


def oldest_waiting(conn) -> dt.datetime | None:
    """When the longest-waiting task was queued."""
    return _earliest(conn.execute(select(*_FIRST_WAITING)).one())


def _earliest(times) -> dt.datetime | None:
    return min((at for at in times if at is not None), default=None)


def counts(db: Engine | Connection) -> dict[str, dict[str, int]]:
    """{type: {status: n}} over every task ever recorded (finished ones from the stored
    aggregates, so pruned tasks still count)."""
    with reading(db) as conn:
        return _by_type(_unfinished(conn), task_stats.all_time_counts(conn))


def _by_type(unfinished: dict[tuple[str, str], int],
             finished: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    result = {task_type: dict(by_status) for task_type, by_status in finished.items()}
    for (task_type, status), n in unfinished.items():
        result.setdefault(task_type, {})[status] = n
    return result


def worker_list(db: Engine | Connection, lost_after: float, *, now: dt.datetime) -> list[dict]:
    """The health panel's view of the workers (the seed's keys): `jobs.workers.list_workers`
    with each one alive, lost or stopped (exited); `now` from the shared clock."""
    return [{
        "id": w["id"], "hostname": w["host"], "pid": w["pid"], "kind": w["kind"],
        "concurrency": w["concurrency"], "running": w["current_tasks"],
        "last_seen": w["last_heartbeat"], "seconds_since_heartbeat": w["seconds_since_heartbeat"],
        "state": "stopped" if w["stopped_at"] else "lost" if w["state"] == "lost" else "alive",
    } for w in sorted(list_workers(db, lost_after, now=now), key=lambda w: w["id"])]


# The summary's scalar facts in one statement, with the unfinished counts or without them
# (when the last count is given again): on PostgreSQL each statement is a round trip to a
# server process that, on a busy machine, waits for a core, and the health report, the
# slowest request under load, reads this summary.
_SUMMARY = select(*_FIRST_WAITING, task_stats.finished_since(bindparam("since"), FAILURE))
_SUMMARY_AND_COUNTS = _SUMMARY.add_columns(*_COUNT_EACH)


def queue_summary(db: Engine | Connection, *, now: dt.datetime) -> dict:
    """`now` from the shared clock (jobs/clock.py), which stamped the tasks' times."""
    return _summary(db, now)[0]


def queue_summary_and_counts(db: Engine | Connection, *,
                             now: dt.datetime) -> tuple[dict, dict[str, dict[str, int]]]:
    """The queue summary and `counts`, from one read of each figure."""
    summary, unfinished, finished = _summary(db, now)
    return summary, _by_type(unfinished, finished)


def _summary(db: Engine | Connection, now: dt.datetime) -> tuple[dict, dict, dict]:
    """The summary, and the unfinished and all-time counts it was made from."""
    with reading(db) as conn:
        unfinished = _counts.reused(conn.engine)
        started = time.monotonic()
        row = conn.execute(_SUMMARY if unfinished is not None else _SUMMARY_AND_COUNTS,
                           {"since": now - dt.timedelta(hours=1)}).one()
        facts, figures = row[:len(_FIRST_WAITING) + 1], row[len(_FIRST_WAITING) + 1:]
        if unfinished is None:
            unfinished = _counts.counted(conn.engine, figures, time.monotonic() - started)
        oldest, failures = _earliest(facts[:-1]), int(facts[-1])
        finished = task_stats.all_time_counts(conn)
    by_status: dict[str, int] = {}
    for (_, status), n in unfinished.items():
        by_status[status] = by_status.get(status, 0) + n
    return {
        "running": by_status.get(STARTED, 0),
        "waiting": sum(by_status.get(s, 0) for s in WAITING_STATUSES),
        "oldest_waiting_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
        "failures_last_hour": failures,
        "total_tracked": sum(by_status.values()) + sum(sum(c.values()) for c in finished.values()),
    }, unfinished, finished
