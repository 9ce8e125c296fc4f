"""Workers SIGKILLed every second while hundreds of tasks run: all finish, none twice."""
from __future__ import annotations

import datetime as dt
import random
import threading
import time

from tests.chaos.conftest import LONG
from tests.chaos.helpers import (CHAOS_ENV, Database, children, figures_for, kill, start_worker,
                                 wait_all_final)
from tests.support import wait_until


def test_workers_sigkilled_every_second_lose_and_duplicate_nothing(fresh_stack, figures):
    total = 300 if LONG else 60
    stack = fresh_stack("redis", **CHAOS_ENV)
    stack.worker_args = []
    stack.start()
    # Besides the kills, workers sometimes die between taking a message and claiming it.
    consumers = [start_worker(stack, f"chaos-w{i}", 2, FAULT_INJECTION="after_dequeue:0.03")
                 for i in range(2)]
    wait_until(lambda: stack.capacity() >= 4, 30, "four worker processes")
    db = Database(stack)
    kills: list[tuple[dt.datetime, list[str]]] = []  # when, and the tasks the victim ran
    stop = threading.Event()

    def killer() -> None:
        while not stop.wait(1.0):
            victims = [pid for c in consumers for pid in children(c.pid)]
            if not victims:
                continue
            pid = random.choice(victims)
            running = [r[0] for r in db.rows("SELECT id FROM tasks WHERE status = 'STARTED' "
                                             "AND worker LIKE :w", w=f"%:{pid}:%")]
            if kill(pid):
                kills.append((dt.datetime.now(dt.UTC), running))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        for i in range(total):
            if i % 2:
                stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": f"SLOW tide {i}"})
            else:
                assert stack.client.post("/api/status-check", json={}).status_code == 202
        wait_all_final(db, timeout=240 if LONG else 120)
    finally:
        stop.set()
        thread.join()
    elapsed = time.monotonic() - started

    result = figures_for(db)
    recover = _times_to_recover(db, kills)
    figures(**result, kills=len(kills), seconds=round(elapsed, 1),
            max_time_to_recover_s=round(max(recover, default=0), 2),
            median_time_to_recover_s=round(sorted(recover)[len(recover) // 2], 2) if recover else 0)
    db.close()
    assert result["tasks"] == total
    assert result["lost"] == 0 and result["duplicated"] == 0, result
    assert result["succeeded"] == total, result
    assert len(kills) >= min(5, int(elapsed) - 1), kills  # a kill every second of the run
    # A run lost with its worker is queued again within 2 x WORKER_LOST_AFTER of the kill
    # (with a margin for the machine being shared).
    assert max(recover, default=0) < 2 * float(CHAOS_ENV["WORKER_LOST_AFTER"]) + 2, recover


def _times_to_recover(db: Database, kills) -> list[float]:
    """For each task running on a killed worker: seconds until it was queued again (RETRY),
    started again or ended."""
    times = []
    for when, task_ids in kills:
        for task_id in task_ids:
            rows = db.rows("SELECT at, status FROM task_history WHERE task_id = :t ORDER BY id",
                           t=task_id)
            after = [at for at, status in rows
                     if status != "PENDING"
                     and _aware(at) > when]
            if after:
                times.append((_aware(after[0]) - when).total_seconds())
    return times


def _aware(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
