"""History at scale: each page and endpoint timed over HTTP with 2,000 tasks and with N.

    .venv/bin/python bench/bench_history.py [--tasks N] [--small 2000] [--db sqlite,postgresql]
                                            [--requests 40] [--waiting 20]

`--tasks` defaults to BENCH_HISTORY_TASKS or 200,000 (`BENCH_HISTORY_TASKS=1000000 make bench`
for the full size). For each database and each size, the history is filled directly with bulk
INSERTs (set-up, not what is measured): finished tasks spread over the last 30 days, and 20
waiting ones (`--waiting` sets the large database's: a deep backlog), the queue paused so
that they stay waiting; PostgreSQL then gets
the VACUUM ANALYZE autovacuum would give it. Then a web server is started on each (embedded
mode, one process), every
endpoint is warmed, both servers are requested `--requests` times in alternation, and both are
stopped. Prints p95 per endpoint at both sizes, their ratio, and each web process's memory;
the goal is p95 ≤ 100 ms and ≤ 1.5 × the 2,000-task figure.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.task_stats import percentile  # noqa: E402
from tests.support import PostgresServer, Proc, free_port, wait_until  # noqa: E402

PYTHON = sys.executable
TYPES = [("content_generation", 60), ("status_check", 30), ("post_approval", 8),
         ("daily_operations", 1), ("weekly_report", 1)]
FINAL = [("SUCCESS", 90), ("FAILURE", 7), ("REVOKED", 3)]
SPAN = dt.timedelta(days=30)
CHUNK = 20_000


def _endpoints(sample_id: str) -> list[tuple[str, str]]:
    return [
        ("board page", "/"),
        ("board page, status filter", "/?status=FAILURE"),
        ("board page 5 (older)", "/?page=5"),
        ("/api/tasks", "/api/tasks"),
        ("/api/tasks?q=<id prefix>", f"/api/tasks?q={sample_id[:6]}"),
        ("/api/tasks?type=…&status=…", "/api/tasks?type=post_approval&status=FAILURE"),
        ("/api/tasks/active", "/api/tasks/active"),
        ("/api/task-status/<id>", f"/api/task-status/{sample_id}"),
        ("task page", f"/tasks/{sample_id}"),
        ("/api/tasks/stats", "/api/tasks/stats"),
        ("/api/tasks/stats?window=30d", "/api/tasks/stats?window=30d"),
        ("stats page", "/stats"),
        ("stats page, 30 days", "/stats?window=30d"),
        ("/metrics", "/metrics"),
        ("/api/health", "/api/health"),
        ("health page", "/health"),
    ]


def _rows(n: int, now: dt.datetime, rng: random.Random):
    """`n` finished tasks, oldest first, evenly over SPAN before `now`."""
    types, type_w = zip(*TYPES)
    finals, final_w = zip(*FINAL)
    owners = [f"author{i}@example.com" for i in range(200)]
    step = SPAN / n
    start = now - SPAN
    for i in range(n):
        task_type = rng.choices(types, type_w)[0]
        status = rng.choices(finals, final_w)[0]
        enqueued = start + step * i
        started = enqueued + dt.timedelta(seconds=rng.lognormvariate(-2, 1.2))
        finished = started + dt.timedelta(seconds=rng.lognormvariate(0 if task_type == "content_generation" else -3, 0.8))
        result = ({"posts": [{"platform": "mastodon", "text": "x" * 280, "length": 280}] * 2, "count": 2}
                  if status == "SUCCESS" else None)
        error = ({"type": rng.choice(["timeout", "lost", "ValueError"]), "message": "bench"}
                 if status == "FAILURE" else None)
        yield {
            "id": rng.randbytes(12).hex(), "type": task_type, "owner": rng.choice(owners),
            "params": {"platforms": ["mastodon", "bluesky"], "count_per_platform": 1,
                       "book": {"title": "The Lighthouse Keeper's Daughter"}},
            "status": status, "progress_done": 1, "progress_total": 1, "result": result,
            "error": error, "attempts": 1, "max_attempts": 3, "worker": "bench-host:1",
            "terminate": False, "parent_id": None, "enqueued_at": enqueued,
            "started_at": None if status == "REVOKED" else started,
            "finished_at": finished, "updated_at": finished,
        }


def fill(url: str, n: int, waiting: int) -> str:
    """Bulk-insert `n` finished and `waiting` waiting tasks; returns a finished task's id."""
    from sqlalchemy import insert

    from jobs.db import make_engine
    from jobs.models import tasks

    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(n)
    sample = None
    batch = []
    started = time.perf_counter()
    with engine.begin() as conn:
        for row in _rows(n, now - dt.timedelta(minutes=5), rng):
            batch.append(row)
            if len(batch) == CHUNK:
                conn.execute(insert(tasks), batch)
                sample = sample or batch[len(batch) // 2]["id"]
                batch = []
        if batch:
            conn.execute(insert(tasks), batch)
            sample = sample or batch[len(batch) // 2]["id"]
        backlog = [{**row, "status": "PENDING", "started_at": None, "finished_at": None,
                    "result": None, "error": None, "attempts": 0,
                    "enqueued_at": now - dt.timedelta(seconds=waiting - i), "updated_at": now}
                   for i, row in enumerate(_rows(waiting, now, rng))]
        for start in range(0, waiting, CHUNK):
            conn.execute(insert(tasks), backlog[start:start + CHUNK])
    from jobs import pause
    pause.pause(engine, None, "bench")  # the waiting tasks stay waiting: no worker runs them
    try:  # the stored aggregates, where this version keeps them
        from jobs import task_stats
        task_stats.count_tasks(engine)
    except ImportError:
        pass
    if engine.dialect.name == "postgresql":
        # What autovacuum does for a table in service: statistics for the planner and the
        # visibility map that lets index-only scans skip the table.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    print(f"  filled {n:,} + {waiting:,} waiting tasks in {time.perf_counter() - started:.1f} s", flush=True)
    return sample


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """A web server (embedded mode, one process) on a database filled with `n` tasks."""

    def __init__(self, url: str, n: int, work: Path, waiting: int) -> None:
        self.sample = fill(url, n, waiting)
        env = {**os.environ, "DATA_DIR": str(work / f"data-{n}-{waiting}"), "DATABASE_URL": url,
               "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        env.pop("REDIS_URL", None)
        made = subprocess.run([PYTHON, "-m", "webapp", "create-user", "--email", "bench@example.com",
                               "--role", "manager", "--password", "bench password 1", "--token"],
                              cwd=work, env=env, capture_output=True, text=True, timeout=120, check=True)
        port = free_port()
        self.web = Proc(f"web-{n}", [PYTHON, "-m", "webapp", "--port", str(port)], env, work)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers={
            "Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"})
        try:
            wait_until(lambda: _answers(self.client), 60, "the web server to answer")
        except BaseException:
            self.stop()
            raise

    def get(self, path: str) -> float:
        began = time.perf_counter()
        response = self.client.get(path)
        elapsed = (time.perf_counter() - began) * 1000
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return elapsed

    def stop(self) -> None:
        self.client.close()
        self.web.stop()


def measure(servers: list[Server], requests: int) -> list[dict[str, float]]:
    """p95 per endpoint on each server. Requests alternate between the servers and go round
    the endpoints, so noise on a shared machine falls on both sizes alike."""
    endpoints = [_endpoints(server.sample) for server in servers]
    for server, paths in zip(servers, endpoints):
        for _, path in paths:  # warm: caches, query plans, lazy imports
            for _ in range(3):
                server.get(path)
    times = [{name: [] for name, _ in paths} for paths in endpoints]
    for _ in range(requests):
        for i in range(len(endpoints[0])):
            for server, paths, sink in zip(servers, endpoints, times):
                name, path = paths[i]
                sink[name].append(server.get(path))
    return [{name: _p95(values) for name, values in sink.items()} for sink in times]


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code in (200, 503)
    except httpx.HTTPError:
        return False


def _p95(values: list[float]) -> float:
    return percentile(values, 0.95)  # the product's rule (nearest rank), as the stats page


def main() -> None:
    # Stopped from outside (SIGTERM), still stop the servers it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=int(os.environ.get("BENCH_HISTORY_TASKS", 200_000)))
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per endpoint")
    parser.add_argument("--waiting", type=int, default=20,
                        help="waiting tasks in the large database (the small one has 20)")
    args = parser.parse_args()
    failed = False
    for backend in args.db.split(","):
        print(f"\n== {backend}: {args.small:,} vs {args.tasks:,} tasks, 20 vs {args.waiting:,} "
              "waiting ==", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
            work = Path(tmp)
            database = PostgresServer() if backend == "postgresql" else None
            servers: list[Server] = []
            try:
                for i, (n, waiting) in enumerate(((args.small, 20), (args.tasks, args.waiting))):
                    url = (database.database(f"history{i}") if database
                           else f"sqlite:///{work / f'history-{i}.db'}")
                    servers.append(Server(url, n, work, waiting))
                small, large = measure(servers, args.requests)
                small_rss, large_rss = (_rss_mb(s.web.pid) for s in servers)
            finally:
                for server in servers:
                    server.stop()
                if database:
                    database.stop()
        print(f"{'endpoint':32} {'p95 ' + format(args.small, ','):>12} {'p95 ' + format(args.tasks, ','):>14}"
              f" {'ratio':>7}  goal")
        for name in small:
            ratio = large[name] / small[name]
            ok = large[name] <= 100 and ratio <= 1.5
            failed |= not ok
            print(f"{name:32} {small[name]:9.1f} ms {large[name]:11.1f} ms {ratio:7.2f}  {'ok' if ok else 'MISSED'}")
        print(f"{'web process memory (RSS)':32} {small_rss:9.0f} MB {large_rss:11.0f} MB "
              f"{large_rss / small_rss:7.2f}", flush=True)
    print("\nall endpoints within p95 ≤ 100 ms and ≤ 1.5 × the small figure" if not failed
          else "\nsome endpoints missed the goal (marked MISSED)")


if __name__ == "__main__":
    main()
