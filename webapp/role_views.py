"""What an author may see of the service as a whole: its state, not other people's work.

Health, queue statistics and the autonomous status name tasks (ids of everyone's runs),
the manager who switched automation on, and the machines workers run on. An author gets
the same documents with those left out: what runs by type only, workers numbered instead
of named by host and process. Managers and viewers see everything.
"""
from __future__ import annotations


def _workers(items: list[dict]) -> list[dict]:
    return [{"id": f"worker {n}", "state": w["state"], "kind": w["kind"],
             "concurrency": w["concurrency"], "seconds_since_heartbeat": w["seconds_since_heartbeat"],
             "running": [{"type": r.get("type")} for r in w["running"]]}
            for n, w in enumerate(items, 1)]


def autonomous_for_author(status: dict) -> dict:
    last = status.get("last_daily_operations")
    return {**{k: v for k, v in status.items() if k != "changed_by"},
            "last_daily_operations": last and {k: v for k, v in last.items() if k != "task_id"}}


def health_for_author(report: dict) -> dict:
    queue = report["task_queue_status"]
    workers = queue["workers"]
    problems = [p for p in report["problems"] if not p.startswith(("task ", "worker "))]
    lost = sum(w["state"] == "lost" for w in workers)
    if lost:
        problems.append(f"{lost} worker(s) stopped reporting")
    return {**report, "problems": problems,
            "task_queue_status": {**queue, "workers": _workers(workers), "overdue_tasks": [
                {k: v for k, v in t.items() if k != "task_id"} for t in queue["overdue_tasks"]]},
            "autonomous_status": autonomous_for_author(report["autonomous_status"])}


def stats_for_author(stats: dict) -> dict:
    celery = stats["celery"]
    originals = list(celery["workers"].values())
    renamed = {w["id"]: mine for w, mine in zip(originals, _workers(originals))}
    return {**stats, "celery": {
        "workers": {mine["id"]: mine for mine in renamed.values()},
        "registered_tasks": {renamed[key]["id"]: types
                             for key, types in celery["registered_tasks"].items() if key in renamed}}}
