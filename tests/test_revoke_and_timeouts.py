"""Revoke pending / running / stuck tasks, and timeouts, with thread (embedded) and process
(Redis) workers."""
from __future__ import annotations

import subprocess

from tests.support import PYTHON, ROOT, wait_until


def _release_until_free(stack, fake_llm, task_id: str) -> None:
    """Answer the stalled model calls until the thread running `task_id` lets go."""
    def freed() -> bool:
        fake_llm.release_stalled()
        return task_id not in stack.running()
    wait_until(freed, 10, "the thread to stop the task", interval=0.2)


def test_revoked_pending_task_never_runs(stack, fake_llm):
    stuck = [stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": f"STALL {i}"})
             for i in range(stack.capacity())]
    for task_id in stuck:
        stack.wait_status(task_id, "STARTED")
    waiting = stack.queue(platforms=["twitter"], count_per_platform=1)
    assert stack.task(waiting)["status"] == "PENDING"

    response = stack.client.post(f"/api/tasks/revoke/{waiting}", json={})
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert stack.task(waiting)["status"] == "REVOKED"

    for task_id in stuck:
        assert stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": True}).status_code == 200
    for task_id in stuck:
        _release_until_free(stack, fake_llm, task_id)
    # A task queued after the revoked one runs, so the revoked message was consumed.
    later = stack.queue(platforms=["twitter"], count_per_platform=1)
    stack.wait_status(later, "SUCCESS", timeout=30)
    record = stack.task(waiting)
    assert record["status"] == "REVOKED"
    assert record["attempts"] == 0 and record["started_at"] is None


def test_revoked_running_task_stops_at_its_next_checkpoint(stack):
    task_id = stack.queue(platforms=["twitter", "facebook", "threads"], count_per_platform=2,
                          book={"title": "SLOW boats"})
    wait_until(lambda: stack.task(task_id)["progress"]["done"] >= 1, 20, "first post")
    response = stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": False})
    assert response.status_code == 200
    assert stack.task(task_id)["status"] == "REVOKED"  # at once, before the worker confirms
    wait_until(lambda: task_id not in stack.running(), 10, "the worker to let go")
    record = stack.task(task_id)
    assert record["status"] == "REVOKED"
    assert record["progress"]["done"] < 6


def test_terminate_stops_a_stuck_task(stack, fake_llm):
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL forever"})
    stack.wait_status(task_id, "STARTED")
    wait_until(lambda: task_id in stack.running(), 10, "the worker to report the run")
    response = stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": True})
    assert response.status_code == 200
    assert response.json()["terminate"] is True
    assert stack.task(task_id)["status"] == "REVOKED"
    if stack.mode == "redis":
        # A process worker is interrupted even inside a blocked call.
        wait_until(lambda: task_id not in stack.running(), 3, "the process worker to stop it")
    else:
        # A thread stuck in a system call cannot be interrupted; it stops when the call returns.
        _release_until_free(stack, fake_llm, task_id)
    assert stack.task(task_id)["status"] == "REVOKED"


def test_task_past_its_timeout_fails_with_timeout(stack, fake_llm):
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL again"})
    record = stack.wait_status(task_id, {"FAILURE"}, timeout=15)
    assert record["error"]["type"] == "timeout"
    assert "timeout after 6s" in record["error"]["message"]
    if stack.mode == "redis":
        wait_until(lambda: task_id not in stack.running(), 3, "the process worker to stop it")
    else:
        _release_until_free(stack, fake_llm, task_id)
    assert stack.task(task_id)["status"] == "FAILURE"


FIRST_GENERATION = """
import sys
from jobs.runtime import build_runtime
from jobs.settings import load_settings

rt = build_runtime(load_settings(data_dir=sys.argv[1], llm_provider="offline",
                                 timeout_content_generation=0.25))
assert "jobs.writers.offline" not in sys.modules, "the writers were loaded before the task"
record = rt.submit("content_generation", "ann", {"platforms": ["twitter"], "count_per_platform": 1,
                                                  "book": {"title": "First light"}})
rt.executor.start_in_worker()
rt.huey.execute(rt.huey.dequeue())
rt.tracker.flush_outcomes()
print(rt.tracker.get(record["task_id"])["status"], rt.tracker.get(record["task_id"])["error"])
rt.executor.stop()
rt.close()
"""


def test_a_workers_first_generation_loads_the_writers_outside_its_timeout(tmp_path):
    # A fresh interpreter, as a worker process starts: loading the writers takes longer than
    # this timeout (0.5-0.7 s of CPU), writing one offline post far less.
    done = subprocess.run([PYTHON, "-c", FIRST_GENERATION, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[0] == "SUCCESS", done.stdout
