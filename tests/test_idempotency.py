"""Idempotency-Key: a client that times out and retries never doubles its work."""
from __future__ import annotations

import concurrent.futures

import httpx

from tests.support import PYTHON, Proc, free_port, wait_until


def _count(stack) -> int:
    return stack.client.get("/api/tasks", params={"per_page": 1}).json()["total"]


def test_same_key_same_body_answers_the_first_answer_and_queues_nothing(fresh_stack):
    stack = fresh_stack("embedded").start()
    body = {"platforms": ["twitter"], "count_per_platform": 1, "async": True}
    headers = {"Idempotency-Key": "gen-42"}
    first = stack.client.post("/api/generate-posts", json=body, headers=headers)
    assert first.status_code == 202, first.text
    before = _count(stack)
    again = stack.client.post("/api/generate-posts", json=body, headers=headers)
    assert again.status_code == 202
    assert again.json()["task_id"] == first.json()["task_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # the same bytes, not only the same values
    assert _count(stack) == before

    other = stack.client.post("/api/generate-posts", json={**body, "count_per_platform": 2},
                              headers=headers)
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    # The same key on another endpoint is another request too.
    assert stack.client.post("/api/status-check", json={}, headers=headers).status_code == 422
    # Keys are per user: another user's same key is theirs.
    token = stack.create_user("author@example.com", "author")
    stack.add_book(None)
    with stack.client_for(token) as author:
        author.post("/api/books", json={"title": "Salt Roads", "author": "A. Writer"})
        mine = author.post("/api/generate-posts", json=body, headers=headers)
        assert mine.status_code == 202, mine.text
        assert mine.json()["task_id"] != first.json()["task_id"]


def test_bad_keys_and_refusals_are_not_remembered(fresh_stack):
    stack = fresh_stack("embedded").start()
    bad = stack.client.post("/api/status-check", json={}, headers={"Idempotency-Key": "x" * 201})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_idempotency_key"
    # A refused request (here: too many posts) is not kept; fixed, the same key works.
    headers = {"Idempotency-Key": "fix-me"}
    too_many = {"platforms": ["twitter"], "count_per_platform": 10_000, "async": True}
    assert stack.client.post("/api/generate-posts", json=too_many, headers=headers).status_code == 400
    assert stack.client.post("/api/generate-posts", json=too_many, headers=headers).status_code == 400


def test_concurrent_retries_and_a_second_web_process_queue_once(fresh_stack):
    stack = fresh_stack("redis").start()
    # A second web process on the same database and Redis: keys hold across processes.
    port = free_port()
    second = Proc("second-web", [PYTHON, "-m", "webapp", "--port", str(port)], stack.env, stack.dir)
    try:
        other = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                             headers={"Authorization": f"Bearer {stack.token}"})
        wait_until(lambda: other.get("/healthz").status_code == 200, 30, "the second web process")
        before = _count(stack)
        headers = {"Idempotency-Key": "daily-run-2026-12-02"}

        def post(i: int) -> httpx.Response:
            client = stack.client if i % 2 else other
            return client.post("/api/autonomous/execute-daily", headers=headers)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(16)))
        done = [a for a in answers if a.status_code == 202]
        assert {a.status_code for a in answers} <= {202, 409}, [a.text for a in answers]
        assert len({a.json()["task_id"] for a in done}) == 1
        later = wait_until(lambda: (a := post(1)).status_code == 202 and a, 10, "the stored answer")
        assert later.json()["task_id"] == done[0].json()["task_id"]
        assert _count(stack) == before + 1
        other.close()
    finally:
        second.stop()
