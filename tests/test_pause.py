"""Pausing and resuming the queue: POST /api/queue/pause and /api/queue/resume."""
from __future__ import annotations

import pytest

from jobs import pause
from jobs.db import make_engine
from tests.support import wait_until


def _messages_waiting(stack) -> int | None:
    return stack.client.get("/api/health").json()["services"]["queue"]["messages_waiting"]


def _status_check(stack) -> str:
    response = stack.client.post("/api/status-check", json={})
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


@pytest.mark.parametrize("kind", ["embedded", "redis"])
def test_paused_tasks_wait_across_a_restart_and_run_on_resume(fresh_stack, fake_llm, kind):
    stack = fresh_stack(kind, PAUSE_CHECK_INTERVAL="0").start()
    running = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL pause"})
    stack.wait_status(running, "STARTED")

    paused = stack.client.post("/api/queue/pause", json={})
    assert paused.status_code == 200 and paused.json()["changed"] is True
    assert "*" in paused.json()["paused"]
    waiting = [_status_check(stack) for _ in range(3)]
    # The workers have taken the messages off the queue and left the records waiting.
    wait_until(lambda: _messages_waiting(stack) == 0, 15, "the workers to see the messages")
    assert {stack.task(t)["status"] for t in waiting} == {"PENDING"}
    def finished() -> bool:  # a running task finishes (its model call answered once made)
        fake_llm.release_stalled()
        return stack.task(running)["status"] == "SUCCESS"
    wait_until(finished, 20, "the running task to finish", interval=0.1)

    queue = stack.client.get("/api/health").json()["task_queue_status"]
    assert queue["paused"]["*"]["by"] == "manager@example.com" and queue["paused"]["*"]["since"]
    board = stack.client.get("/", headers={"Accept": "text/html"}).text
    assert "Paused:" in board

    stack.web.stop()  # the pause is kept in the database
    stack.start_web()
    assert "*" in stack.client.get("/api/queue").json()["paused"]
    assert {stack.task(t)["status"] for t in waiting} == {"PENDING"}

    resumed = stack.client.post("/api/queue/resume", json={}).json()
    assert resumed["changed"] is True and resumed["paused"] == {} and resumed["requeued"] >= 3
    for task_id in waiting:
        stack.wait_status(task_id, "SUCCESS")
    actions = [e["action"] for e in stack.client.get("/api/audit").json()["entries"]]
    assert actions.index("queue.resume") < actions.index("queue.pause")  # newest first


def test_pausing_one_type_holds_only_that_type(fresh_stack):
    # A long check interval: the worker's reading that status checks are paused is still fresh
    # when the resume queues the held task again, and it must not drop that message.
    stack = fresh_stack("embedded", PAUSE_CHECK_INTERVAL="60").start()
    body = stack.client.post("/api/queue/pause", json={"type": "status_check"}).json()
    assert list(body["paused"]) == ["status_check"]
    held = _status_check(stack)
    generated = stack.queue(platforms=["twitter"], count_per_platform=1)
    stack.wait_status(generated, "SUCCESS")
    wait_until(lambda: _messages_waiting(stack) == 0, 15, "the workers to see the messages")
    assert stack.task(held)["status"] == "PENDING"
    again = stack.client.post("/api/queue/pause", json={"type": "status_check"}).json()
    assert again["changed"] is False
    stack.client.post("/api/queue/resume", json={"type": "status_check"})
    # Within seconds, not after the lost-message sweep (2 x WORKER_LOST_AFTER = 20 s).
    stack.wait_status(held, "SUCCESS", timeout=8)


def test_a_paused_reading_is_checked_before_it_is_believed(tmp_path):
    """The cache keeps an unpaused reading for its interval, never a paused one."""
    db = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        cache = pause.PauseCache(db, interval=3600)
        assert cache("status_check") is False
        pause.pause(db, "status_check", "manager@example.com")
        assert cache("status_check") is False  # the unpaused reading holds for its interval
        cache._expires = 0.0
        assert cache("status_check") is True
        pause.resume(db, "status_check")
        assert cache("status_check") is False  # at once: a resume is never read late
    finally:
        db.dispose()


def test_pause_is_for_managers_and_known_types(stack):
    author = stack.client_for(stack.create_user("pause-author@example.com", "author"))
    assert author.post("/api/queue/pause", json={}).status_code == 403
    bad = stack.client.post("/api/queue/pause", json={"type": "everything"})
    assert bad.status_code == 400 and "type" in bad.json()["fields"]
    assert stack.client.post("/api/queue/resume", content="[1]").status_code == 400
    assert stack.client.get("/api/queue").json()["paused"] == {}
