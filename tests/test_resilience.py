"""Nothing is lost: killed workers, a Redis that lost its data, shutdowns, bad settings."""
from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import time

import pytest
import redis

from tests.support import PYTHON, ROOT, TIMEOUT_BEYOND_THE_TEST, RedisServer, wait_until


def _post_seqs(stack, batch_id: str) -> list[int]:
    """The stored posts of a batch, read from the database itself (SQLite or PostgreSQL)."""
    from sqlalchemy import create_engine, text
    engine = create_engine(stack.env.get("DATABASE_URL") or f"sqlite:///{stack.data_dir / 'app.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT seq FROM posts WHERE batch_id = :b ORDER BY seq"),
                                     {"b": batch_id}).scalars())
    finally:
        engine.dispose()


def _worker_pid(record: dict) -> int:
    return int(record["worker"].split(":")[1])  # host:pid:random


@pytest.mark.parametrize("kind", ["redis", "postgres"])
def test_sigkilled_worker_task_is_requeued_and_succeeds_without_duplicates(fresh_stack, kind):
    stack = fresh_stack(kind, **TIMEOUT_BEYOND_THE_TEST).start()
    task_id = stack.queue(platforms=["twitter", "facebook", "threads"], count_per_platform=2,
                          book={"title": "SLOW currents"})
    record = wait_until(lambda: (t := stack.task(task_id))["progress"]["done"] >= 2 and t, 20,
                        "two posts written")
    os.kill(_worker_pid(record), signal.SIGKILL)

    final = stack.wait_status(task_id, {"SUCCESS", "FAILURE"}, timeout=40)
    assert final["status"] == "SUCCESS", final
    assert final["attempts"] == 2
    assert _post_seqs(stack, task_id) == list(range(6))  # rewritten, not duplicated


def test_lost_task_with_no_attempts_left_fails_as_lost(fresh_stack):
    stack = fresh_stack("redis")
    stack.env["TASK_MAX_ATTEMPTS"] = "1"
    stack.start()
    task_id = stack.queue(platforms=["twitter", "facebook"], count_per_platform=2,
                          book={"title": "SLOW harbour"})
    record = wait_until(lambda: (t := stack.task(task_id))["progress"]["done"] >= 1 and t, 20,
                        "first post")
    os.kill(_worker_pid(record), signal.SIGKILL)
    final = stack.wait_status(task_id, {"SUCCESS", "FAILURE"}, timeout=30)
    assert final["status"] == "FAILURE"
    assert final["error"]["type"] == "lost"
    assert final["error"]["worker"] == record["worker"]  # named apart from the message
    assert record["worker"] not in final["error"]["message"]  # authors get it as an alias


def test_whole_worker_killed_then_restarted(fresh_stack):
    stack = fresh_stack("redis", **TIMEOUT_BEYOND_THE_TEST).start()
    task_id = stack.queue(platforms=["twitter", "linkedin"], count_per_platform=2,
                          book={"title": "SLOW river"})
    wait_until(lambda: stack.task(task_id)["progress"]["done"] >= 1, 20, "first post")
    stack.workers[0].kill_group()  # the consumer and its worker processes
    wait_until(lambda: stack.task(task_id)["status"] == "RETRY", 15, "the task to be queued again")
    stack.start_worker(["--workers", "2"], "replacement")
    assert stack.wait_status(task_id, {"SUCCESS", "FAILURE"}, timeout=40)["status"] == "SUCCESS"


def test_waiting_tasks_survive_a_redis_that_lost_its_data(fresh_stack, artifacts, request):
    own_redis = RedisServer(artifacts)
    request.addfinalizer(own_redis.stop)
    stack = fresh_stack("redis", REDIS_URL=own_redis.url)
    stack.worker_args = []  # no worker yet: tasks wait in Redis
    stack.start()
    waiting = [stack.queue(platforms=["twitter"], count_per_platform=1) for _ in range(3)]
    assert redis.Redis.from_url(own_redis.url).zcard("huey.redis.bookmarketing") == 3

    own_redis.stop()
    own_redis.start()  # same port, empty: the queue is gone
    stack.start_worker(["--workers", "2"], "after-restart")
    for task_id in waiting:
        assert stack.wait_status(task_id, {"SUCCESS", "FAILURE"}, timeout=30)["status"] == "SUCCESS"
    # The board's stream resumes too.
    reader = stack.events()
    wait_until(lambda: reader.comments or reader.events, 10, "the stream after the restart")
    reader.close()


def test_pickled_payload_is_rejected_not_executed(fresh_stack, tmp_path):
    stack = fresh_stack("redis").start()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    # The priority queue: a sorted set of 8-byte time prefix + payload.
    client.zadd("huey.redis.bookmarketing", {b"\0" * 8 + pickle.dumps(Exploit()): 0})
    wait_until(lambda: "Rejected a queue payload that is not JSON" in stack.workers[0].log(), 10,
               "the worker to reject the payload")
    assert not marker.exists()
    # The worker goes on working.
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1)
    assert stack.wait_status(task_id, "SUCCESS")["status"] == "SUCCESS"


def test_server_stops_promptly_with_open_event_streams(fresh_stack):
    stack = fresh_stack("embedded").start()
    readers = [stack.events() for _ in range(3)]
    wait_until(lambda: all(r.comments or r.events for r in readers), 10, "streams to open")
    started = time.monotonic()
    assert stack.web.stop(signal.SIGTERM, timeout=15) == 0
    assert time.monotonic() - started < 8
    assert all(r.done.wait(5) for r in readers)


def test_embedded_shutdown_hands_running_tasks_back(fresh_stack):
    stack = fresh_stack("embedded", SHUTDOWN_GRACE="0.2", **TIMEOUT_BEYOND_THE_TEST)
    stack.start()
    task_id = stack.queue(platforms=["twitter", "facebook", "threads", "mastodon"],
                          count_per_platform=2, book={"title": "SLOW lanterns"})
    wait_until(lambda: stack.task(task_id)["progress"]["done"] >= 1, 20, "first post")
    stack.web.stop(signal.SIGTERM)
    with sqlite3.connect(stack.data_dir / "app.db") as conn:
        status, attempts = conn.execute("SELECT status, attempts FROM tasks WHERE id = ?",
                                        (task_id,)).fetchone()
    assert (status, attempts) == ("RETRY", 0)
    stack.start_web()  # same data folder: the task is picked up again
    assert stack.wait_status(task_id, {"SUCCESS", "FAILURE"}, timeout=40)["status"] == "SUCCESS"


def test_unreachable_redis_at_start_serves_503_then_queues_once_it_answers(fresh_stack, artifacts,
                                                                           request):
    """No split brain: a web process never runs tasks apart from the Redis workers."""
    own_redis = RedisServer(artifacts)
    request.addfinalizer(own_redis.stop)
    own_redis.stop()  # REDIS_URL names a Redis that is not there yet
    stack = fresh_stack("redis", REDIS_URL=own_redis.url)
    stack.worker_args = []
    stack.dir.mkdir(parents=True, exist_ok=True)
    stack.token = stack.create_user("manager@example.com", "manager")
    stack.client.headers["Authorization"] = f"Bearer {stack.token}"
    stack.start_web()
    health = stack.client.get("/api/health")
    assert health.status_code == 200
    body = health.json()
    assert body["task_queue_status"]["type"] == "redis"
    assert body["status"] == "degraded"
    assert any("queue unreachable" in p for p in body["problems"])
    started = time.monotonic()
    refused = stack.client.post("/api/status-check", json={})
    assert time.monotonic() - started < 1.0
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "queue_unavailable"
    assert int(refused.headers["Retry-After"]) > 0

    own_redis.start()
    stack.start_worker(["--workers", "1"], "late-worker")
    response = wait_until(lambda: (r := stack.client.post("/api/status-check", json={}))
                          .status_code == 202 and r, 15, "the queue to take tasks")
    task_id = response.json()["task_id"]
    assert stack.wait_status(task_id, {"SUCCESS", "FAILURE"})["status"] == "SUCCESS"
    assert "embedded" not in stack.web.log()


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.run([PYTHON, *args], cwd=env["DATA_DIR"], capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(ROOT), **env}, timeout=60)


def test_bad_settings_are_named_at_start_up(tmp_path):
    result = _run({"WORKER_CONCURRENCY": "lots", "DATA_DIR": str(tmp_path)}, "-m", "webapp")
    assert result.returncode == 2
    assert "WORKER_CONCURRENCY" in result.stderr
    result = _run({"DATA_DIR": str(tmp_path)}, str(ROOT / "huey_worker.py"))
    assert result.returncode == 2
    assert "REDIS_URL is not set" in result.stderr


def test_worker_sigterm_lets_a_short_task_finish_and_exits(fresh_stack):
    stack = fresh_stack("redis", SHUTDOWN_GRACE="10", **TIMEOUT_BEYOND_THE_TEST).start()
    task_id = stack.queue(platforms=["twitter", "facebook"], count_per_platform=1,
                          book={"title": "SLOW goodbye"})
    wait_until(lambda: stack.task(task_id)["progress"]["done"] >= 1, 20, "first post")
    assert stack.workers[0].stop(signal.SIGTERM, timeout=20) == 0
    assert stack.task(task_id)["status"] == "SUCCESS"


def test_worker_sigterm_hands_back_a_task_that_outlives_the_grace(fresh_stack):
    stack = fresh_stack("redis", SHUTDOWN_GRACE="0.5", **TIMEOUT_BEYOND_THE_TEST).start()
    task_id = stack.queue(platforms=["twitter", "facebook", "threads", "mastodon"],
                          count_per_platform=2, book={"title": "SLOW farewell"})
    wait_until(lambda: stack.task(task_id)["progress"]["done"] >= 1, 20, "first post")
    assert stack.workers[0].stop(signal.SIGTERM, timeout=20) == 0
    record = stack.task(task_id)
    assert (record["status"], record["attempts"]) == ("RETRY", 0)
    stack.start_worker(["--workers", "1"], "next")
    assert stack.wait_status(task_id, {"SUCCESS", "FAILURE"}, timeout=40)["status"] == "SUCCESS"


def test_a_plain_list_queue_of_an_earlier_version_is_queued_again_by_priority(fresh_stack, artifacts,
                                                                            request):
    own_redis = RedisServer(artifacts)
    request.addfinalizer(own_redis.stop)
    stack = fresh_stack("redis", REDIS_URL=own_redis.url)
    stack.worker_args = []
    stack.start()
    waiting = [stack.queue(platforms=["twitter"], count_per_platform=1) for _ in range(2)]
    client = redis.Redis.from_url(own_redis.url)
    client.delete("huey.redis.bookmarketing")  # as an earlier version left it: a list
    client.lpush("huey.redis.bookmarketing", b"left by an earlier version")
    stack.start_worker(["--workers", "2"], "upgraded")
    for task_id in waiting:
        assert stack.wait_status(task_id, "SUCCESS", timeout=30)["status"] == "SUCCESS"
    assert client.type("huey.redis.bookmarketing") in (b"zset", b"none")
