"""Throughput of the tracked pipeline against raw Huey, one run side by side.

    .venv/bin/python bench/bench_pipeline.py [--tasks 5000] [--rounds 1] [--workers 4]
        [--worker-type process|thread] [--database sqlite|postgres]

Starts its own redis-server (and PostgreSQL with `--database postgres`) on free ports, one
web server (`python -m webapp`) that stays up for both sides, then per round:

- raw: N stock Huey no-op tasks queued, then `bench/raw_huey.py` started; timed from its
  process start to the queue drained (in its favour: its last few no-ops may still run).
- tracked: N status checks queued over HTTP (single `POST /api/status-check` requests on
  one keep-alive connection, then `POST /api/tasks/batch`, each timed: the enqueue figures),
  then `huey_worker.py` started; timed from its process start to the last record SUCCESS.
  The single requests go through a lean client (the standard library's, about a tenth of
  httpx's CPU per request: on 2 cores the client competes with the server), and the same
  client's rate of `GET /healthz` on the same connection is printed beside them: what the
  web server answers when a request does nothing, the ceiling for one client.

Both sides run the same worker count and type against the same redis-server, both are
warmed by one small untimed run first, and both are stopped with SIGTERM after the clock
stops. Prints jobs/s, the ratio, and CPU milliseconds per task of the worker, web and
Redis processes.
"""
from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import PostgresServer, Proc, RedisServer, free_port, wait_until  # noqa: E402

POLL = 0.005  # both sides look for "done" this often
SINGLE_REQUESTS = 500  # per round, queued one request at a time (the rest in batches)
BATCH_SIZE = 1000


@dataclass
class Run:
    jobs_per_s: float
    worker_cpu_ms: float  # per task, worker processes (consumer and its children)
    web_cpu_ms: float
    redis_cpu_ms: float
    db_cpu_ms: float  # PostgreSQL's processes; 0 for SQLite (its work is in the worker and web)


def proc_cpu(pid: int) -> float:
    """CPU seconds a live process has used (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of a process and all its live descendants, plus what its reaped children
    used (PostgreSQL: the postmaster and its backends)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited while we looked
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        tree.update(children)
        frontier += children
    total = 0.0
    for pid in tree:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def keep_alive_requests(port: int, token: str, method: str, path: str, n: int,
                        status: int) -> float:
    """n requests one after the other on one keep-alive connection; returns the seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Length": "0"}
    try:
        started = time.perf_counter()
        for _ in range(n):
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != status:
                raise AssertionError(f"{method} {path}: {response.status} {body[:300]!r}")
        return time.perf_counter() - started
    finally:
        conn.close()


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


class Bench:
    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = tmp
        self.redis = RedisServer(tmp)
        self.client = redis.Redis.from_url(self.redis.url)
        self.postgres = PostgresServer() if args.database == "postgres" else None
        self.env = {**os.environ, "REDIS_URL": self.redis.url, "DATA_DIR": str(tmp / "data"),
                    "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
                    # Raw Huey's consumer keeps normal priority: so do ours, so that both
                    # sides meet the web process and Redis on equal terms.
                    "WORKER_NICE": "0"}
        self.env.pop("DATABASE_URL", None)
        if self.postgres is not None:
            self.env["DATABASE_URL"] = self.postgres.database("bench")
        self.sql = create_engine(self.env.get("DATABASE_URL")
                                 or f"sqlite:///{tmp / 'data' / 'app.db'}")
        token = self._create_user()
        port = free_port()
        self.web = Proc("web", [sys.executable, "-m", "webapp", "--port", str(port)], self.env, tmp)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                 headers={"Authorization": f"Bearer {token}"})
        wait_until(lambda: self.http.get("/healthz").status_code == 200, 60, "the web server")
        self.port, self.token = port, token
        self.has_batch = self.http.post("/api/tasks/batch", json={"tasks": []}).status_code != 404

    def _create_user(self) -> str:
        out = subprocess.run([sys.executable, "-m", "webapp", "create-user", "--email",
                              "bench@example.com", "--role", "manager", "--token"],
                             env=self.env, cwd=self.tmp, capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]

    def close(self) -> None:
        self.http.close()
        self.web.stop()
        self.sql.dispose()
        if self.postgres is not None:
            self.postgres.stop()
        self.redis.stop()

    # -- the two sides, started, timed and stopped the same way --
    def _drain(self, cmd: list[str], done, tasks: int) -> Run:
        web0, redis0, db0 = proc_cpu(self.web.pid), redis_cpu(self.client), self._db_cpu()
        started = time.perf_counter()
        with open(self.tmp / "workers.log", "ab") as log:
            worker = subprocess.Popen(cmd, env=self.env, cwd=self.tmp, stdout=log, stderr=log)
        def finished() -> bool:
            if worker.poll() is not None or not self.web.alive():
                raise RuntimeError(f"a process of the run exited early; see {self.tmp}")
            return done()
        try:
            wait_until(finished, 900, "the queued tasks to finish", POLL)
            elapsed = time.perf_counter() - started
            web1, redis1, db1 = proc_cpu(self.web.pid), redis_cpu(self.client), self._db_cpu()
        finally:
            worker.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(worker.pid, 0)
        per_task = 1000 / tasks
        return Run(tasks / elapsed, (usage.ru_utime + usage.ru_stime) * per_task,
                   (web1 - web0) * per_task, (redis1 - redis0) * per_task, (db1 - db0) * per_task)

    def _db_cpu(self) -> float:
        return tree_cpu(self.postgres.proc.pid) if self.postgres is not None else 0.0

    def raw(self, tasks: int) -> Run:
        os.environ["REDIS_URL"] = self.redis.url
        from bench import raw_huey
        for _ in range(tasks):
            raw_huey.noop()
        cmd = [sys.executable, str(ROOT / "bench" / "raw_huey.py"), "--workers",
               str(self.args.workers), "--worker-type", self.args.worker_type]
        return self._drain(cmd, lambda: self.client.llen(raw_huey.QUEUE_KEY) == 0, tasks)

    def requests_per_s(self, method: str, path: str, n: int, status: int) -> float:
        """n requests one after the other on one keep-alive connection, per second."""
        return n / keep_alive_requests(self.port, self.token, method, path, n, status)

    def enqueue(self, tasks: int) -> tuple[float, float | None]:
        """Queue status checks over HTTP; tasks/s of single requests and of batches."""
        single = tasks if not self.has_batch else min(tasks, SINGLE_REQUESTS)
        single_rate = self.requests_per_s("POST", "/api/status-check", single, 202)
        rest = tasks - single
        if not rest:
            return single_rate, None
        started = time.perf_counter()
        while rest:
            n = min(rest, BATCH_SIZE)
            response = self.http.post("/api/tasks/batch", json={
                "tasks": [{"type": "status_check", "params": {}}] * n})
            assert response.status_code == 202, response.text
            rest -= n
        return single_rate, (tasks - single) / (time.perf_counter() - started)

    def tracked(self, tasks: int) -> tuple[Run, float, float | None]:
        single_rate, batch_rate = self.enqueue(tasks)
        cmd = [sys.executable, str(ROOT / "huey_worker.py"), "--workers", str(self.args.workers),
               "--worker-type", self.args.worker_type, "--no-periodic"]
        waiting = text("SELECT 1 FROM tasks WHERE status IN ('PENDING', 'RETRY', 'STARTED') LIMIT 1")

        def done() -> bool:
            with self.sql.connect() as conn:
                return conn.execute(waiting).first() is None
        run = self._drain(cmd, done, tasks)
        with self.sql.connect() as conn:
            failed = conn.execute(text("SELECT count(*) FROM tasks WHERE status != 'SUCCESS'")).scalar()
        assert failed == 0, f"{failed} tracked task(s) did not succeed"
        return run, single_rate, batch_rate


def _cpu(run: Run, args: argparse.Namespace) -> str:
    figures = [run.worker_cpu_ms, run.web_cpu_ms, run.redis_cpu_ms]
    if args.database == "postgres":
        figures.append(run.db_cpu_ms)
    return " / ".join(f"{f:.2f}" for f in figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-type", default="process", choices=("thread", "process"))
    parser.add_argument("--database", default="sqlite", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop what we started
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), args)
        try:
            bench.raw(args.warmup)
            bench.tracked(args.warmup)
            print(f"{args.tasks} tasks, {args.workers} {args.worker_type} workers, "
                  f"{args.database}; CPU ms per task: worker / web / redis"
                  + (" / postgres" if args.database == "postgres" else ""))
            ratios = []
            for i in range(args.rounds):
                raw = bench.raw(args.tasks)
                ours, single, batch = bench.tracked(args.tasks)
                ceiling = bench.requests_per_s("GET", "/healthz", SINGLE_REQUESTS, 200)
                ratios.append(ours.jobs_per_s / raw.jobs_per_s)
                print(f"round {i + 1}: raw {raw.jobs_per_s:6.0f} jobs/s "
                      f"({_cpu(raw, args)}) | tracked {ours.jobs_per_s:6.0f} jobs/s ({_cpu(ours, args)})"
                      f" = {ratios[-1]:.0%} of raw | enqueue {single:.0f}/s single"
                      f" (GET /healthz {ceiling:.0f}/s)"
                      + (f", {batch:.0f}/s batched" if batch else ""))
            print(f"tracked/raw: {min(ratios):.0%}–{max(ratios):.0%} over {len(ratios)} round(s)")
        finally:
            bench.close()


if __name__ == "__main__":
    main()
