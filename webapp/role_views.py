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
import re
from collections.abc import Callable
from typing import TypeVar

from quart import current_app

from webapp.auth import current, owner_scope

T = TypeVar("T")

# A worker id (jobs/execution.py: `host:pid:random`) inside a message: records written before
# the worker was named in a field of its own carry it in their error text.
_WORKER_ID = re.compile(r"\b[\w.-]+:\d+:[0-9a-f]{6}\b")
# Problems whose text after the colon names the service's internals (addresses, driver errors).
_PLAIN_PROBLEMS = ("database unreachable", "queue unreachable", "live events interrupted")


class AuthorView:
    def __init__(self, secret: str | bytes) -> None:
        self._key = hashlib.sha256(
            b"worker names:" + (secret.encode() if isinstance(secret, str) else secret)).digest()

    def worker(self, worker_id: str | None) -> str | None:
        if not worker_id:
            return worker_id
        digest = hmac.new(self._key, worker_id.encode(), hashlib.sha256).hexdigest()
        return f"worker {digest[:8]}"

    def text(self, text: str | None) -> str | None:
        """`text` with any worker id in it replaced by the worker's alias."""
        return text and _WORKER_ID.sub(lambda m: self.worker(m.group(0)), text)

    # -- their own work --
    def task(self, view: dict) -> dict:
        """A task view (jobs.tracking.task_view, or a summary with a `worker` key)."""
        shown = {**view, "worker": self.worker(view.get("worker"))}
        error = view.get("error")
        if isinstance(error, dict):
            shown["error"] = {**error, "message": self.text(error.get("message"))}
            if error.get("worker"):
                shown["error"]["worker"] = self.worker(error["worker"])
        return shown

    def tasks(self, views: list[dict]) -> list[dict]:
        return [self.task(v) for v in views]

    def detail(self, detail: dict) -> dict:
        """A task page's facts (webapp.board_feed.task_detail)."""
        return {**detail, "task": self.task(detail["task"]),
                "timeline": self.timeline(detail["timeline"])}

    def timeline(self, steps: list[dict]) -> list[dict]:
        return [{**s, "worker": self.worker(s.get("worker")), "detail": self.text(s.get("detail"))}
                for s in steps]

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

    def pauses(self, paused: dict) -> dict:
        """The queue's pauses: which types wait and since when, not who paused them."""
        return {task_type: _without(pause, "by") for task_type, pause in paused.items()}

    def schedules(self, listed: list[dict]) -> list[dict]:
        """The periodic schedules, without the ids of the runs (the service's tasks)."""
        return [{**s, "last_run": s["last_run"] and _without(s["last_run"], "task_id")}
                for s in listed]

    def webhook(self, hook: dict | None, email: str) -> dict | None:
        """A task's completion webhook, if this author asked for it: someone else's address
        (a manager's, given when queueing for the author) and its answers are theirs."""
        return hook if hook is not None and hook["requested_by"] == email else None

    def autonomous(self, status: dict) -> dict:
        last = status.get("last_daily_operations")
        return {**_without(status, "changed_by"),
                "last_daily_operations": last and _without(last, "task_id")}

    def health(self, report: dict) -> dict:
        queue = report["task_queue_status"]
        workers = queue["workers"]
        problems = [self._problem(p) for p in report["problems"]
                    if not p.startswith(("task ", "worker "))]
        lost = sum(w["state"] == "lost" for w in workers)
        if lost:
            problems.append(f"{lost} worker(s) stopped reporting")
        services = report["services"]
        return {**report, "problems": problems,
                "services": {**services, "database": _plain(services["database"]),
                             "queue": _plain(services["queue"])},
                "task_queue_status": {
                    **_plain(queue), "workers": self._panel_workers(workers),
                    "paused": self.pauses(queue["paused"]), "overdue_tasks": [
                        _without(t, "task_id") for t in queue["overdue_tasks"]]},
                "autonomous_status": self.autonomous(report["autonomous_status"])}

    @staticmethod
    def _problem(problem: str) -> str:
        for plain in _PLAIN_PROBLEMS:
            if problem.startswith(plain + ":"):
                return plain
        return problem

    def stats(self, stats: dict) -> dict:
        celery = stats["celery"]
        originals = list(celery["workers"].values())
        renamed = {w["id"]: mine for w, mine in zip(originals, self._panel_workers(originals))}
        return {**_plain(stats), "celery": {
            "workers": {mine["id"]: mine for mine in renamed.values()},
            "registered_tasks": {renamed[key]["id"]: types
                                 for key, types in celery["registered_tasks"].items()
                                 if key in renamed}}}


def _plain(state: dict) -> dict:
    """A service's state without how it is reached (the Redis address in `reason`) or its
    driver's error text."""
    return _without(state, "reason", "error")


def _without(mapping: dict, *keys: str) -> dict:
    return {k: v for k, v in mapping.items() if k not in keys}


def install(app, secret: str | bytes) -> None:
    app.extensions["author_view"] = AuthorView(secret)


def author_view() -> AuthorView | None:
    """The signed-in user's filter: None for managers and viewers, who see everything."""
    return None if owner_scope() is None else current_app.extensions["author_view"]


def webhook_seen(hook: dict | None) -> dict | None:
    """A task's webhook (jobs.webhooks.deliveries) as the signed-in user may see it."""
    view = author_view()
    return hook if view is None else view.webhook(hook, current().email)


def seen(shape: Callable[[AuthorView, T], T], value: T) -> T:
    """`value` as the signed-in user may see it: `shape` (an AuthorView method) for an
    author, as it is for everyone else."""
    view = author_view()
    return value if view is None else shape(view, value)
