"""The health report and queue statistics, shared by the JSON API and the pages."""
from __future__ import annotations

import asyncio
import time

from quart import request
from sqlalchemy import Connection

from jobs import alerts, autonomous, pause, queries, shared_state, task_stats
from jobs.db import read_connection, reading
from jobs.models import now_iso
from jobs.outage import REDIS_ERRORS, redis_outage
from jobs.runtime import Runtime
from jobs.task_types import NAMES as TYPE_NAMES
from webapp.errors import ApiError


def _probe(fn) -> dict:
    started = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "value": value}


def database_ok(rt: Runtime) -> bool:
    conn, probe = _checked_out(rt)
    if conn is not None:
        conn.close()
    return probe["ok"]


def _checked_out(rt: Runtime) -> tuple[Connection | None, dict]:
    """A connection of the database and its probe (the checkout, timed: PostgreSQL's pool
    pings the server at each one, SQLite's opens the file for a new connection); no
    connection when the probe failed."""
    started = time.perf_counter()
    try:
        conn = read_connection(rt.db)
    except Exception as exc:
        return None, {"backend": rt.db.dialect.name, "ok": False,
                      "error": f"{type(exc).__name__}: {exc}"}
    return conn, {"backend": rt.db.dialect.name, "ok": True,
                  "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _queue_probe(rt: Runtime) -> dict:
    result = _probe(rt.pending_count)
    pending = result.pop("value", None)
    return {"backend": rt.mode, "reason": rt.choice.reason, "messages_waiting": pending, **result}


def _collect(rt: Runtime) -> dict:
    """The panel's facts, read on one connection: the database's probe is its checkout (on
    PostgreSQL each read is a round trip that waits for the server's turn on a busy machine,
    so there are as few as the facts allow)."""
    now = rt.clock.now()  # the clock worker heartbeats and task times are written with
    queue = _queue_probe(rt)  # before the checkout: a Redis timeout holds no connection
    conn, database = _checked_out(rt)
    if conn is None:
        return {"database": database, "queue": queue}
    with conn:
        states = shared_state.read_many(conn, {autonomous.KEY: autonomous.OFF,
                                               pause.KEY: pause.NONE})
        return {
            "database": database,
            "queue": queue,
            "summary": queries.queue_summary(conn, now=now),
            "workers": queries.worker_list(conn, rt.settings.worker_lost_after, now=now),
            "overdue": alerts.overdue_tasks(conn, rt.settings, now),
            "autonomous": autonomous.status(conn, states[autonomous.KEY]),
            "paused": states[pause.KEY],
        }


async def health_report(rt: Runtime) -> dict:
    data = await asyncio.to_thread(_collect, rt)
    problems = []
    database, queue, summary = data["database"], data["queue"], data.get("summary") or {}
    workers = data.get("workers") or []
    alive = [w for w in workers if w["state"] == "alive"]
    if not database["ok"]:
        problems.append(f"database unreachable: {database['error']}")
    if not queue["ok"]:
        # Pages, history and task status still work from the database: degraded, not down.
        problems.append(f"queue unreachable: {redis_outage.describe() or queue['error']}; "
                        "new tasks are refused with 503 until it is back")
    reader_problem = getattr(rt.bus, "reader_problem", None)
    if reader_problem:
        problems.append(f"live events interrupted: {reader_problem}")
    if not alive:
        problems.append("no live worker: queued tasks will wait")
    for worker in workers:
        if worker["state"] == "lost":
            problems.append(f"worker {worker['id']} silent for {worker['seconds_since_heartbeat']}s")
    for task in data.get("overdue") or []:
        problems.append(f"task {task['task_id']} has run {task['running_seconds']}s, "
                        f"past its {task['timeout']:g}s timeout")
    status = "unhealthy" if not database["ok"] else "degraded" if problems else "healthy"
    return {
        "status": status,
        "timestamp": now_iso(),
        "problems": problems,
        "services": {"database": database, "queue": queue,
                     "events": {"backend": rt.mode, "subscribers": rt.bus.subscriber_count}},
        "task_queue_status": {
            "type": rt.mode,
            "reason": rt.choice.reason,
            "active_tasks": summary.get("running", 0),
            "pending_tasks": summary.get("waiting", 0),
            "oldest_pending_seconds": summary.get("oldest_waiting_seconds"),
            "failures_last_hour": summary.get("failures_last_hour", 0),
            "workers_alive": len(alive),
            "workers": workers,
            "overdue_tasks": data.get("overdue") or [],
            # {task type or "*" (all): {"since", "by"}}: tasks of these types wait.
            "paused": data.get("paused") or {},
        },
        "autonomous_status": data.get("autonomous") or {"error": "database unreachable"},
    }


def _pending_or_none(rt: Runtime) -> int | None:
    """Messages waiting in the queue; None while it is unreachable (the rest is the database's)."""
    try:
        return rt.pending_count()
    except REDIS_ERRORS:
        return None


async def queue_stats(rt: Runtime, window: str = "1h") -> dict:
    """The seed's queue statistics, and the finished tasks' stats over `window`
    (one of task_stats.WINDOWS) from the stored aggregates."""
    def collect() -> dict:
        now = rt.clock.now()  # the clock worker heartbeats and task times are written with
        pending = _pending_or_none(rt)  # before the checkout: a Redis timeout holds no connection
        with reading(rt.db) as conn:  # one checkout (on PostgreSQL a ping) for the three
            summary, counts = queries.queue_summary_and_counts(conn, now=now)
            return {"summary": summary, "counts": counts,
                    "window": task_stats.window_stats(conn, window),
                    "workers": queries.worker_list(conn, rt.settings.worker_lost_after, now=now),
                    "pending": pending}
    data = await asyncio.to_thread(collect)
    summary, workers, stats = data["summary"], data["workers"], data["window"]
    embedded = rt.mode == "embedded"
    alive = [w for w in workers if w["state"] == "alive"]
    return {
        "backend": rt.mode,
        "reason": rt.choice.reason,
        # The seed's keys: the in-process pool (embedded mode) and the separate workers.
        "thread_pool": {
            # What the in-process workers recorded they run at once (embedded mode).
            "max_workers": sum(w["concurrency"] for w in alive) if embedded else 0,
            "active_tasks": summary["running"] if embedded else 0,
            "total_tracked": summary["total_tracked"],
        },
        "celery": {
            "workers": {w["id"]: w for w in workers},
            "registered_tasks": {w["id"]: list(TYPE_NAMES) for w in alive},
        },
        "queue": {"messages_waiting": data["pending"], **summary},
        "tasks": data["counts"],
        "durations": stats["run_time"],
        **{key: stats[key] for key in ("window", "start", "end", "step_seconds", "throughput",
                                       "failures_by_type", "run_time", "wait_time", "series")},
    }


def stats_window() -> str:
    """The request's `window` (default 1h); an unknown one is a 400."""
    window = request.args.get("window", "1h")
    if window not in task_stats.WINDOWS:
        raise ApiError(400, "invalid_window",
                       f"window must be one of {', '.join(task_stats.WINDOWS)}, not {window[:20]!r}")
    return window

