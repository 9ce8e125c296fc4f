"""A process killed at each dangerous step: the task is queued again, by someone else."""
from __future__ import annotations

import time

import httpx

from tests.chaos.helpers import CHAOS_ENV, Database, children, kill, start_worker
from tests.support import ROOT, TIMEOUT_BEYOND_THE_TEST, wait_until

# Recovery must come within 2 x WORKER_LOST_AFTER; the margin covers a shared machine.
BOUND = 2 * float(CHAOS_ENV["WORKER_LOST_AFTER"]) + 2


def _stack(fresh_stack, **env):
    stack = fresh_stack("redis", **CHAOS_ENV, **env)
    stack.worker_args = []
    return stack.start()


def test_web_killed_between_record_and_enqueue(fresh_stack, figures):
    stack = _stack(fresh_stack)
    start_worker(stack, "fp-w0", 2)
    db = Database(stack)
    stack.web.stop()
    stack.env["FAULT_INJECTION"] = "after_record:1"
    # The web host's clock runs a minute ahead, set as the multi-host bed sets it: the
    # record's times come from the shared clock (Redis TIME), which the workers' sweep
    # compares them with; stamped with this host's own clock, the record would look fresh
    # for a minute and wait that long to be queued again.
    web_env = dict(stack.env)
    stack.env.update(BMA_BED_CLOCK_SKEW="60",
                     PYTHONPATH=f"{ROOT / 'tests' / 'multihost' / 'skewed_clock'}:{ROOT}")
    stack.start_web()
    stack.env = web_env
    try:
        stack.client.post("/api/status-check", json={})
        raise AssertionError("the web process should have died after recording the task")
    except httpx.TransportError:
        pass
    died = time.monotonic()
    [(task_id, status)] = db.rows("SELECT id, status FROM tasks")
    assert status == "PENDING"  # recorded, never queued
    del stack.env["FAULT_INJECTION"]
    # The workers' sweeper queues it again; the web need not come back for that.
    wait_until(lambda: db.statuses()[task_id] == "SUCCESS", BOUND + 5, "the stranded task to run")
    figures(point="after_record", seconds_to_success=round(time.monotonic() - died, 2))
    stack.start_web()
    db.close()


def test_worker_killed_between_dequeue_and_claim(fresh_stack, figures):
    stack = _stack(fresh_stack)
    faulty = start_worker(stack, "fp-faulty", 1, FAULT_INJECTION="after_dequeue:1")
    wait_until(lambda: children(faulty.pid), 15, "the faulty worker's processes")
    first = set(children(faulty.pid))
    db = Database(stack)
    task_id = stack.client.post("/api/status-check", json={}).json()["task_id"]
    wait_until(lambda: set(children(faulty.pid)) != first, 15, "the faulty worker to die")
    faulty.kill_group()  # it would take the message again and die again
    died = time.monotonic()
    assert db.statuses()[task_id] == "PENDING"
    start_worker(stack, "fp-healthy", 1)
    wait_until(lambda: db.statuses()[task_id] == "SUCCESS", BOUND + 10, "the task to run")
    figures(point="after_dequeue", seconds_to_success=round(time.monotonic() - died, 2))
    db.close()


def test_killed_in_the_middle_of_recovering_a_lost_run(fresh_stack, figures):
    # Every process that recovers a lost run dies right after recording RETRY, before
    # queueing it; the web is restarted without the fault if it was the one.
    stack = _stack(fresh_stack, FAULT_INJECTION="mid_recovery:1", **TIMEOUT_BEYOND_THE_TEST)
    runner = start_worker(stack, "fp-runner", 1)
    wait_until(lambda: stack.capacity() >= 1, 15, "a worker")
    db = Database(stack)
    task_id = stack.queue(platforms=["twitter", "facebook", "threads", "mastodon"],
                          count_per_platform=2, book={"title": "SLOW undertow"})
    wait_until(lambda: db.statuses()[task_id] == "STARTED", 15, "the task to start")
    for pid in children(runner.pid):
        kill(pid)
    killed = time.monotonic()
    wait_until(lambda: db.statuses()[task_id] == "RETRY", BOUND + 5, "the lost run to be recorded")
    # Whoever recorded it died before queueing it: the web, or a restarted worker process.
    # (the killed worker process, its replacement, and a replacement of that one).
    wait_until(lambda: not stack.web.alive() or len(db.rows("SELECT id FROM workers")) >= 3, 10,
               "the recovering process to die")
    if not stack.web.alive():
        stack.env.pop("FAULT_INJECTION")
        stack.start_web()
    start_worker(stack, "fp-clean", 1, FAULT_INJECTION="")
    wait_until(lambda: db.statuses()[task_id] == "SUCCESS", 60, "the task to run again")
    figures(point="mid_recovery", seconds_to_success=round(time.monotonic() - killed, 2))
    db.close()
