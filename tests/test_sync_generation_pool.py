"""Small batches written while the request waits use their own bounded pool with a deadline."""
from __future__ import annotations

import concurrent.futures
import time


def test_small_batches_have_a_deadline_and_overflow_to_the_queue(fresh_stack, fake_llm):
    stack = fresh_stack("embedded", SYNC_GENERATION_WORKERS="1", SYNC_GENERATION_TIMEOUT="1")
    stack.start()
    stalled = {"platforms": ["twitter"], "count_per_platform": 1,
               "book": {"title": "STALL in the shallows"}}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            first = pool.submit(stack.client.post, "/api/generate-posts", json=stalled)
            # The model hangs: the request answers at its deadline, not the model's timeout.
            started = time.monotonic()
            answer = first.result(timeout=10)
            assert answer.status_code == 504, answer.text
            assert answer.json()["error"] == "generation_timeout"
            assert time.monotonic() - started < 5
            # Its call still holds the one slot: the next small batch is queued instead.
            queued = stack.client.post("/api/generate-posts", json={
                "platforms": ["twitter"], "count_per_platform": 1})
            assert queued.status_code == 202, queued.text
            assert queued.json()["status"] == "content_generation_queued"
            # Sign-in and pages do not wait on the model.
            started = time.monotonic()
            assert stack.client.get("/api/me").status_code == 200
            assert time.monotonic() - started < 1
        finally:
            fake_llm.release_stalled()
    assert stack.wait_status(queued.json()["task_id"], "SUCCESS")["status"] == "SUCCESS"
    # With the slot free again, a small batch is answered at once.
    now = stack.client.post("/api/generate-posts", json={"platforms": ["twitter"],
                                                         "count_per_platform": 1})
    assert now.status_code == 200 and now.json()["posts_generated"] == 1
