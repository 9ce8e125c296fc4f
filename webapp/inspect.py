"""`python -m webapp inspect active|stats|workers|schedules|task <id> [--json]`.

What the API shows, read straight from the database and the queue (no server needed), as
readable tables or, with --json, the API's own JSON.
"""
from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence

from jobs import queries, schedules, workers
from jobs.runtime import Runtime, build_runtime
from jobs.settings import load_settings
from webapp.health import queue_stats


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str | Callable[[dict], object]]]) -> str:
    """Rows as aligned text columns; each column is (heading, key or function of the row)."""
    cells = [[h.upper() for h, _ in columns]]
    for row in rows:
        cells.append([_text(get(row) if callable(get) else row.get(get)) for _, get in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _progress(task: dict) -> str:
    p = task["progress"]
    return f"{p['done']}/{p['total']}" if p["total"] else "-"


def active(rt: Runtime) -> tuple[dict, str]:
    rows = queries.active_tasks(rt.db)
    data = {"active_tasks": rows, "count": len(rows)}
    text = table(rows, [("task", "task_id"), ("type", "type"), ("status", "status"),
                        ("owner", "owner"), ("progress", _progress), ("worker", "worker"),
                        ("enqueued", "enqueued_at"), ("started", "started_at")])
    return data, f"{text}\n\n{len(rows)} waiting or running"


def stats(rt: Runtime) -> tuple[dict, str]:
    data = asyncio.run(queue_stats(rt))
    queue = data["queue"]
    lines = [f"backend: {data['backend']} ({data['reason']})",
             f"running: {queue['running']}   waiting: {queue['waiting']}   "
             f"messages in queue: {queue['messages_waiting']}   "
             f"oldest waiting: {_text(queue['oldest_waiting_seconds'])} s",
             f"failures in the last hour: {queue['failures_last_hour']}   "
             f"tasks recorded: {queue['total_tracked']}", ""]
    counts = [{"type": t, **c} for t, c in sorted(data["tasks"].items())]
    statuses = ("PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED")
    lines.append(table(counts, [("type", "type"), *((s, lambda r, s=s: r.get(s, 0)) for s in statuses)]))
    if data["durations"]:
        durations = [{"type": t, **d} for t, d in sorted(data["durations"].items())]
        lines += ["", "run time over the last hour (seconds)",
                  table(durations, [("type", "type"), ("count", "count"), ("p50", "p50"),
                                    ("p95", "p95"), ("p99", "p99")])]
    return data, "\n".join(lines)


def workers_(rt: Runtime) -> tuple[dict, str]:
    rows = workers.list_workers(rt.db, rt.settings.worker_lost_after, now=rt.clock.now())
    text = table(rows, [
        ("worker", "id"), ("state", "state"), ("kind", lambda w: f"{w['kind']} x {w['concurrency']}"),
        ("started", "started_at"), ("heartbeat", lambda w: f"{w['seconds_since_heartbeat']:g} s ago"),
        ("tasks run", "tasks_run"),
        ("current tasks", lambda w: ", ".join(f"{t['task_id']} ({t['type']})"
                                              for t in w["current_tasks"]) or "idle")])
    return {"workers": rows}, f"{text}\n\n{len(rows)} worker(s) seen in the last hour"


def schedules_(rt: Runtime) -> tuple[dict, str]:
    rows = schedules.list_schedules(rt.db)
    text = table(rows, [
        ("schedule", "name"), ("task type", "task_type"), ("when", "when"),
        ("next run (UTC)", "next_run"),
        ("last run", lambda s: (f"{s['last_run']['task_id']} {s['last_run']['status']} "
                                f"{s['last_run']['enqueued_at']}") if s["last_run"] else "never"),
        ("enabled", lambda s: "yes" if s["enabled"] else f"no ({s['disabled_reason']})")])
    dated = schedules.dated_work(rt.db, limit=20)
    text += "\n\ndated work (next planned posts)\n" + table(dated, [
        ("when (UTC)", "scheduled_at"), ("what", "label"), ("platform", "platform"),
        ("owner", "owner"), ("state", "status")])
    return {"schedules": rows, "dated_work": dated}, text


def task(rt: Runtime, task_id: str) -> tuple[dict, str] | None:
    record = rt.tracker.get(task_id)
    if record is None:
        return None
    record["timeline"] = rt.tracker.timeline(task_id)
    fields = ("task_id", "type", "status", "owner", "attempts", "max_attempts", "worker",
              "enqueued_at", "started_at", "finished_at", "parent_id")
    lines = [f"{f}: {_text(record[f])}" for f in fields]
    lines.append(f"progress: {_progress(record)}")
    if record["error"]:
        lines.append(f"error: {record['error'].get('type')}: {record['error'].get('message')}")
    lines += ["", table(record["timeline"], [("at", "at"), ("status", "status"),
                                            ("attempt", "attempt"), ("worker", "worker"),
                                            ("detail", "detail")])]
    return record, "\n".join(lines)


def run(command: str, task_id: str | None, as_json: bool) -> int:
    rt = build_runtime(load_settings())
    try:
        if command == "task":
            answer = task(rt, task_id or "")
            if answer is None:
                print(f"error: no task has id {task_id!r}", file=sys.stderr)
                return 1
        else:
            answer = {"active": active, "stats": stats, "workers": workers_,
                      "schedules": schedules_}[command](rt)
    finally:
        rt.close()
    data, text = answer
    print(json.dumps(data, indent=2, default=str) if as_json else text)
    return 0
