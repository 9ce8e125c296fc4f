"""POST /api/tasks/batch: many tasks in one request, all or none, each tracked as usual."""
from __future__ import annotations

import secrets

from tests.support import wait_until


def _count(stack, owner: str) -> int:
    response = stack.client.get("/api/tasks", params={"owner": owner, "per_page": 1})
    assert response.status_code == 200, response.text
    return response.json()["total"]


def test_a_batch_is_queued_and_each_task_tracked(stack):
    owner = f"batch-{secrets.token_hex(4)}"
    reader = stack.events()
    reader.wait_open()
    response = stack.client.post("/api/tasks/batch", json={"user_id": owner, "tasks": [
        {"type": "status_check", "params": {}},
        {"type": "status_check"},
        {"type": "content_generation", "params": {"platforms": ["twitter"], "count_per_platform": 1,
                                                  "book": {"title": "Tides"}}},
    ]})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["count"] == 3 and len(set(body["task_ids"])) == 3
    for task_id in body["task_ids"]:
        record = stack.wait_status(task_id, "SUCCESS", timeout=30)
        assert record["owner"] == owner
        timeline = stack.client.get(f"/api/tasks/{task_id}/timeline").json()["timeline"]
        assert [t["status"] for t in timeline] == ["PENDING", "STARTED", "SUCCESS"]
    wait_until(lambda: all(any(t["status"] == "SUCCESS" for _, t in reader.task_events(i))
                           for i in body["task_ids"]), 10, "every task's events")
    reader.close()
    for task_id in body["task_ids"]:
        versions = [t["version"] for _, t in reader.task_events(task_id)]
        assert versions == sorted(set(versions)) and versions[0] == 1


def test_one_bad_task_refuses_the_whole_batch(stack):
    owner = f"batch-{secrets.token_hex(4)}"
    for tasks, field in [
        ([{"type": "status_check"}, {"type": "mining"}], "tasks.1"),
        ([{"type": "status_check"}, {"type": "post_approval", "params": {"post_ids": []}}],
         "tasks.1.post_approval.params.post_ids"),
        ([{"type": "status_check", "params": {"x": 1}}], "tasks.0.status_check.params.x"),
        # Ids past what an id column holds (PostgreSQL refused them: a 500, found by fuzzing)
        ([{"type": "content_generation", "params": {"platforms": ["twitter"], "book_id": 2**70}}],
         "tasks.0.content_generation.params.book_id"),
        ([{"type": "post_approval", "params": {"post_ids": [1, -2**70]}}],
         "tasks.0.post_approval.params.post_ids.1"),
        ([{"type": "status_check"}] * 1001, "tasks"),
        ([], "tasks"),
    ]:
        response = stack.client.post("/api/tasks/batch", json={"user_id": owner, "tasks": tasks})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert field in response.json()["fields"], response.json()
    response = stack.client.post("/api/tasks/batch", json={"user_id": owner, "tasks": [
        {"type": "status_check"},
        {"type": "content_generation", "params": {"platforms": ["twitter"], "book_id": 999999}}]})
    assert response.status_code == 404 and response.json()["error"] == "book_not_found"
    assert "task 1" in response.json()["message"]
    assert _count(stack, owner) == 0  # nothing recorded from any refused batch
    assert stack.client.post("/api/tasks/batch", content=b"{").status_code == 400


def test_the_batch_endpoint_is_documented(stack):
    spec = stack.client.get("/openapi.json").json()
    assert "post" in spec["paths"]["/api/tasks/batch"]
