"""The workers as an operator sees them, and draining one.

A worker is one process (or, in embedded mode, the web process's pool of threads) writing a
heartbeat row. Its state, as the Workers page and `inspect workers` show it:
- running: heartbeating and taking work;
- stopping: drained (or shutting down) but still finishing tasks;
- stopped: exited cleanly, or drained with nothing left to run;
- lost: silent for longer than WORKER_LOST_AFTER (the reaper re-queues its tasks).

Heartbeats are stamped with the shared clock (jobs/clock.py), so "silent for how long" is
read against that clock too (`now` here is always the runtime's Clock), never the reading
machine's own. Whether a drain was obeyed compares no times at all: the worker writes back
the request it has read (see Executor._heartbeat).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine, select, update

from jobs.db import reading
from jobs.models import iso, workers

SHOWN_FOR = dt.timedelta(hours=1)  # workers that stopped or vanished longer ago are left out


class UnknownWorker(LookupError):
    pass


def state_of(row, now: dt.datetime, lost_after: float) -> str:
    if row["stopped_at"] is not None:
        return "stopped"
    if (now - row["last_seen"]).total_seconds() >= lost_after:
        return "lost"
    if row["drain_requested_at"] is not None:
        obeyed = row["drain_seen_at"] == row["drain_requested_at"]
        return "stopped" if obeyed and not row["running"] else "stopping"
    return "running"


def list_workers(db: Engine | Connection, lost_after: float, *, now: dt.datetime) -> list[dict]:
    """The workers seen within SHOWN_FOR of `now`, a reading of the shared clock."""
    with reading(db) as conn:
        rows = conn.execute(select(workers).where(workers.c.last_seen >= now - SHOWN_FOR)
                            .order_by(workers.c.started_at, workers.c.id)).mappings().all()
    return [{
        "id": r["id"], "host": r["hostname"], "pid": r["pid"], "kind": r["kind"],
        "concurrency": r["concurrency"], "started_at": iso(r["started_at"]),
        "last_heartbeat": iso(r["last_seen"]),
        # At least 0: the clock was read before the rows, and a beat may land in between.
        "seconds_since_heartbeat": max(round((now - r["last_seen"]).total_seconds(), 1), 0.0),
        "tasks_run": r["tasks_run"], "current_tasks": r["running"],
        "draining": r["drain_requested_at"] is not None, "stopped_at": iso(r["stopped_at"]),
        "state": state_of(r, now, lost_after),
    } for r in rows]


def set_draining(db: Engine, worker_id: str, draining: bool, *, now: dt.datetime) -> None:
    """Drain (or undrain) a worker; it notices at its next heartbeat. `now` (the shared
    clock) stamps the request; each request is a new time, so each needs its own
    acknowledgement."""
    with db.begin() as conn:
        found = conn.execute(update(workers).where(workers.c.id == worker_id)
                             .values(drain_requested_at=now if draining else None)).rowcount
    if not found:
        raise UnknownWorker(worker_id)

