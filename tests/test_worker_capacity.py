"""Worker capacity is what each worker really runs at once, as it records it (its `--workers`
for thread workers), not the WORKER_CONCURRENCY setting."""
from __future__ import annotations

from tests.support import wait_until


def test_a_thread_worker_records_its_own_thread_count(fresh_stack):
    stack = fresh_stack("redis")  # WORKER_CONCURRENCY is 4 in the test settings
    stack.worker_args = [["--workers", "6", "--worker-type", "thread"]]
    stack.start()
    wait_until(lambda: stack.capacity() == 6, 30, "the worker to record 6 threads")
    body = stack.client.get("/api/tasks/stats").json()
    assert body["thread_pool"]["max_workers"] == 0  # no in-process pool in Redis mode
    assert [w["concurrency"] for w in body["celery"]["workers"].values()] == [6]


def test_the_embedded_pool_reports_the_threads_it_runs(fresh_stack):
    stack = fresh_stack("embedded", WORKER_CONCURRENCY="3").start()
    wait_until(lambda: stack.capacity() == 3, 30, "the embedded workers to record 3 threads")
    assert stack.client.get("/api/tasks/stats").json()["thread_pool"]["max_workers"] == 3
