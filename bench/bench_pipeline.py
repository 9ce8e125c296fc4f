"""Throughput of the tracked pipeline against raw Huey on the same Redis and worker settings.

    .venv/bin/python bench/bench_pipeline.py [--tasks 2000] [--workers 4] [--worker-type process]

Starts its own redis-server on a free port. "raw" drains no-op Huey tasks; "tracked" drains
status-check tasks through records, events and heartbeats (SQLite in a temporary folder, or
DATABASE_URL if set). Prints jobs per second for each and the ratio.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from huey import RedisHuey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import RedisServer, wait_until  # noqa: E402


def raw_huey(url: str, tasks: int, workers: int, worker_type: str) -> float:
    huey = RedisHuey("bench-raw", url=url, results=False)

    @huey.task()
    def noop():
        return None

    for _ in range(tasks):
        noop()
    consumer = huey.create_consumer(workers=workers, worker_type=worker_type, periodic=False)
    import logging
    logging.getLogger("huey").setLevel(logging.WARNING)
    started = time.perf_counter()
    consumer.start()
    client = redis.Redis.from_url(url)
    wait_until(lambda: client.llen("huey.redis.benchraw") == 0, 600, "raw queue to drain", 0.005)
    # The last dequeued tasks may still be running: give them the same end condition as the
    # tracked run by stopping gracefully.
    consumer.stop(graceful=True)
    return tasks / (time.perf_counter() - started)


def tracked(url: str, tasks: int, workers: int, worker_type: str, data_dir: Path) -> float:
    env = {**os.environ, "REDIS_URL": url, "DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT)}
    os.environ.update({k: env[k] for k in ("REDIS_URL", "DATA_DIR", "LOG_LEVEL")})
    from jobs.reaper import Reaper
    from jobs.runtime import build_runtime
    from jobs.settings import load_settings
    from sqlalchemy import func, select
    from jobs.models import tasks as tasks_table

    rt = build_runtime(load_settings())
    Reaper(rt).reap_once()  # marks the fresh queue, as a web server's reaper would
    for _ in range(tasks):
        rt.submit("status_check", "bench", {})
    started = time.perf_counter()
    worker = subprocess.Popen([sys.executable, str(ROOT / "huey_worker.py"), "--workers", str(workers),
                               "--worker-type", worker_type, "--no-periodic"], env=env, cwd=data_dir)

    def done() -> bool:
        with rt.db.connect() as conn:
            return conn.execute(select(func.count()).select_from(tasks_table)
                                .where(tasks_table.c.status == "SUCCESS")).scalar_one() >= tasks
    try:
        wait_until(done, 900, "tracked tasks to finish", 0.05)
        elapsed = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(30)
    return tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-type", default="process", choices=("thread", "process"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        try:
            raw = raw_huey(server.url, args.tasks, args.workers, args.worker_type)
            print(f"raw huey:        {raw:8.0f} jobs/s")
            ours = tracked(server.url, args.tasks, args.workers, args.worker_type, Path(tmp))
            print(f"tracked pipeline:{ours:8.0f} jobs/s  ({ours / raw:.0%} of raw)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
