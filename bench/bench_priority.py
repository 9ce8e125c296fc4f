"""What a priority queue costs: raw Huey no-op throughput, RedisHuey against PriorityRedisHuey.

    .venv/bin/python bench/bench_priority.py [--tasks 20000] [--workers 4] [--rounds 3]

Starts its own redis-server on a free port. Each round runs both sides the same way, one
after the other: enqueue N no-op tasks (each counts itself done in Redis), start a consumer,
time from its start until the N-th task is done, stop it. Prints jobs/s per side per round
and the ratio priority/plain.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import redis
from huey import PriorityRedisHuey, RedisHuey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import RedisServer, wait_until  # noqa: E402

DONE_KEY = "bench:done"


def drain(cls, url: str, tasks: int, workers: int, worker_type: str) -> float:
    client = redis.Redis.from_url(url)
    client.flushdb()
    huey = cls("bench-priority", url=url, results=False)

    @huey.task()
    def noop():
        huey.storage.conn.incr(DONE_KEY)

    for i in range(tasks):
        # A mix of priorities, as interactive and bulk work would be (plain Huey ignores it).
        huey.enqueue(noop.s(priority=i % 2) if cls is PriorityRedisHuey else noop.s())
    consumer = huey.create_consumer(workers=workers, worker_type=worker_type, periodic=False)
    logging.getLogger("huey").setLevel(logging.WARNING)
    started = time.perf_counter()
    consumer.start()
    wait_until(lambda: int(client.get(DONE_KEY) or 0) >= tasks, 600, "the tasks", 0.005)
    elapsed = time.perf_counter() - started
    consumer.stop(graceful=True)
    client.close()
    return tasks / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-type", default="process", choices=("thread", "process"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        try:
            ratios = []
            for round_no in range(1, args.rounds + 1):
                plain = drain(RedisHuey, server.url, args.tasks, args.workers, args.worker_type)
                prio = drain(PriorityRedisHuey, server.url, args.tasks, args.workers, args.worker_type)
                ratios.append(prio / plain)
                print(f"round {round_no}: RedisHuey {plain:,.0f} jobs/s, PriorityRedisHuey "
                      f"{prio:,.0f} jobs/s, ratio {prio / plain:.2f}", flush=True)
            print(f"priority/plain over {args.rounds} rounds: {min(ratios):.2f}–{max(ratios):.2f} "
                  f"({args.tasks} no-op tasks, {args.workers} {args.worker_type} workers)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
