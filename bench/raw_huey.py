"""The raw side of bench_pipeline: stock Huey no-op tasks, run by a consumer set up the way
huey_worker.py sets up its own (same worker count and type, health checks, quiet logging).

    REDIS_URL=redis://... python bench/raw_huey.py --workers 4 --worker-type process
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from huey import RedisHuey

huey = RedisHuey("bench-raw", url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                 results=False)
QUEUE_KEY = "huey.redis.benchraw"


@huey.task(name="noop")
def noop() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-type", default="process", choices=("thread", "process"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    consumer = huey.create_consumer(workers=args.workers, worker_type=args.worker_type,
                                    periodic=False, graceful_signal="TERM", shutdown_timeout=5,
                                    check_worker_health=True, health_check_interval=1)
    consumer.run()


if __name__ == "__main__":
    # Run under its importable name, so the task's registered name matches the queued one.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import raw_huey
    raw_huey.main()
