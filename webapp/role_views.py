"""What an author may see: their own work, and the service's state without other people's.

Health, queue statistics, the workers list and the autonomous status name tasks (ids of
everyone's runs), the manager who switched automation on, and the machines and processes
workers run on. An author gets the same documents with those left out. Their own tasks,
timelines and events name the worker that ran them by a keyed alias (`worker 3fa2c1d0`)
instead of its host and process: the same alias on every page, answer and stream and in
every web process that shares SECRET_KEY, so an author can still tell that two attempts
ran on different workers, or find their task's worker in the health panel. Managers and
viewers see everything.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import TypeVar

from quart import current_app

from webapp.auth import owner_scope

T = TypeVar("T")


class AuthorView:
    def __init__(self, secret: str | bytes) -> None:
        self._key = hashlib.sha256(
            b"worker names:" + (secret.encode() if isinstance(secret, str) else secret)).digest()

    def worker(self, worker_id: str | None) -> str | None:
        if not worker_id:
            return worker_id
        digest = hmac.new(self._key, worker_id.encode(), hashlib.sha256).hexdigest()
        return f"worker {digest[:8]}"

    # -- their own work --
    def task(self, view: dict) -> dict:
        """A task view (jobs.tracking.task_view, or a summary with a `worker` key)."""
        shown = {**view, "worker": self.worker(view.get("worker"))}
        error = view.get("error")
        if isinstance(error, dict) and error.get("worker"):
            shown["error"] = {**error, "worker": self.worker(error["worker"])}
        return shown

    def tasks(self, views: list[dict]) -> list[dict]:
        return [self.task(v) for v in views]

    def timeline(self, steps: list[dict]) -> list[dict]:
        return [{**s, "worker": self.worker(s.get("worker"))} for s in steps]

    def event(self, data: dict) -> dict:
        """An event's data (jobs.events.Event.data) with its task as the author sees it."""
        task = data.get("task")
        return {**data, "task": self.task(task)} if task else data

    # -- the service --
    def workers(self, items: list[dict]) -> list[dict]:
        """The workers list (jobs.workers.list_workers): how busy each is, not what it runs."""
        return [{**w, "id": self.worker(w["id"]), "host": "", "pid": "",
                 "current_tasks": len(w["current_tasks"])} for w in items]

    def _panel_workers(self, items: list[dict]) -> list[dict]:
        return [{"id": self.worker(w["id"]), "state": w["state"], "kind": w["kind"],
                 "concurrency": w["concurrency"],
                 "seconds_since_heartbeat": w["seconds_since_heartbeat"],
                 "running": [{"type": r.get("type")} for r in w["running"]]}
                for w in items]

    def autonomous(self, status: dict) -> dict:
        last = status.get("last_daily_operations")
        return {**{k: v for k, v in status.items() if k != "changed_by"},
                "last_daily_operations": last and {k: v for k, v in last.items()
                                                   if k != "task_id"}}

    def health(self, report: dict) -> dict:
        queue = report["task_queue_status"]
        workers = queue["workers"]
        problems = [p for p in report["problems"] if not p.startswith(("task ", "worker "))]
        lost = sum(w["state"] == "lost" for w in workers)
        if lost:
            problems.append(f"{lost} worker(s) stopped reporting")
        return {**report, "problems": problems,
                "task_queue_status": {
                    **queue, "workers": self._panel_workers(workers), "overdue_tasks": [
                        {k: v for k, v in t.items() if k != "task_id"}
                        for t in queue["overdue_tasks"]]},
                "autonomous_status": self.autonomous(report["autonomous_status"])}

    def stats(self, stats: dict) -> dict:
        celery = stats["celery"]
        originals = list(celery["workers"].values())
        renamed = {w["id"]: mine for w, mine in zip(originals, self._panel_workers(originals))}
        return {**stats, "celery": {
            "workers": {mine["id"]: mine for mine in renamed.values()},
            "registered_tasks": {renamed[key]["id"]: types
                                 for key, types in celery["registered_tasks"].items()
                                 if key in renamed}}}


def install(app, secret: str | bytes) -> None:
    app.extensions["author_view"] = AuthorView(secret)


def author_view() -> AuthorView | None:
    """The signed-in user's filter: None for managers and viewers, who see everything."""
    return None if owner_scope() is None else current_app.extensions["author_view"]


def seen(shape: Callable[[AuthorView, T], T], value: T) -> T:
    """`value` as the signed-in user may see it: `shape` (an AuthorView method) for an
    author, as it is for everyone else."""
    view = author_view()
    return value if view is None else shape(view, value)
