"""What the chaos tests share: worker process trees, the database's view, resuming streams."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, text

from tests.support import PYTHON, ROOT, Proc, RedisServer, _ping, sse_messages, wait_until

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}

# Liveness windows short enough that recovery shows within a test's time.
CHAOS_ENV = {"HEARTBEAT_INTERVAL": "0.5", "WORKER_LOST_AFTER": "2", "TASK_MAX_ATTEMPTS": "20",
             "SHUTDOWN_GRACE": "1", "LOG_LEVEL": "WARNING"}


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def start_worker(stack, name: str, workers: int = 2, **env: str) -> Proc:
    proc = Proc(name, [PYTHON, str(ROOT / "huey_worker.py"), "--workers", str(workers),
                       "--worker-type", "process"], {**stack.env, **env}, stack.dir)
    stack.workers.append(proc)
    return proc


class Database:
    """The system of record, read directly: what the product says happened."""

    def __init__(self, stack) -> None:
        self.engine = create_engine(stack.env.get("DATABASE_URL")
                                    or f"sqlite:///{stack.data_dir / 'app.db'}")

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def statuses(self) -> dict[str, str]:
        return dict(self.rows("SELECT id, status FROM tasks"))

    def unfinished(self) -> list[str]:
        return [i for i, s in self.statuses().items() if s not in FINAL]

    def failure_types(self) -> list[str]:
        return [error["type"] for (error,) in self.rows("SELECT error FROM tasks WHERE status = 'FAILURE'")
                for error in [json.loads(error) if isinstance(error, str) else error]]

    def successes_per_task(self) -> dict[str, int]:
        return dict(self.rows("SELECT task_id, COUNT(*) FROM task_history "
                              "WHERE status = 'SUCCESS' GROUP BY task_id"))

    def recovered(self) -> int:
        """Tasks that were started more than once: lost with a worker, then run again."""
        return len(self.rows("SELECT task_id FROM task_history WHERE status = 'STARTED' "
                             "GROUP BY task_id HAVING COUNT(*) > 1"))

    def close(self) -> None:
        self.engine.dispose()


def wait_all_final(db: Database, timeout: float) -> float:
    """Seconds until every recorded task is final; fails naming the ones that are not."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if not db.unfinished():
            return time.monotonic() - started
        time.sleep(0.2)
    left = db.unfinished()
    raise AssertionError(f"{len(left)} task(s) never finished: {left[:10]}")


def figures_for(db: Database) -> dict:
    statuses = db.statuses()
    successes = db.successes_per_task()
    return {
        "tasks": len(statuses),
        "succeeded": sum(1 for s in statuses.values() if s == "SUCCESS"),
        "failed": sum(1 for s in statuses.values() if s == "FAILURE"),
        "recovered": db.recovered(),
        "lost": sum(1 for s in statuses.values() if s not in FINAL),
        "duplicated": sum(1 for n in successes.values() if n > 1),
    }


class PersistentRedis(RedisServer):
    """A redis-server that keeps its data across restarts (AOF), as a production one would."""

    def start(self) -> None:
        self.proc = Proc(f"redis-{self.port}", [
            self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--databases", "1000",
            "--dir", str(self.log_dir)],
            dict(os.environ), self.log_dir)
        client = redis.Redis(port=self.port)
        wait_until(lambda: _ping(client), 10, "redis-server to answer PING")
        client.close()


class ResumingStream:
    """An /api/events client that reconnects with its Last-Event-ID, as a browser does."""

    def __init__(self, base_url: str, token: str) -> None:
        self.url = base_url + "/api/events"
        self.token = token
        self.events: list[tuple[str, str, dict]] = []  # (id, event, data)
        self.resyncs: list[int] = []   # index into events at which a resync came
        self.comments = 0
        self.connections = 0
        self.last_id: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                with httpx.Client(timeout=httpx.Timeout(5, read=30)) as client, \
                        client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code != 200:
                        raise httpx.TransportError(f"status {response.status_code}")
                    self.connections += 1
                    self._read(response)
            except httpx.HTTPError:
                pass
            self._stop.wait(0.2)  # the browser's retry delay, shortened

    def _read(self, response) -> None:
        for fields in sse_messages(response.iter_lines()):
            if self._stop.is_set():
                return
            if not fields:
                self.comments += 1
                continue
            kind = fields.get("event", "message")
            if kind == "resync":
                self.resyncs.append(len(self.events))
            else:
                self.events.append((fields.get("id"), kind, json.loads(fields["data"])))
            if fields.get("id"):
                self.last_id = fields["id"]

    def last_status(self) -> dict[str, tuple[int, str]]:
        """Per task: (index of its last event, the status it showed)."""
        seen = {}
        for i, (_id, kind, data) in enumerate(list(self.events)):
            if kind == "task":
                seen[data["task"]["task_id"]] = (i, data["task"]["status"])
        return seen

    def close(self) -> None:
        self._stop.set()


def kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
