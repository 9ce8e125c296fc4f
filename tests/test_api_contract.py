"""The seed's JSON API, request for request, against both queue backends."""
from __future__ import annotations

import re

import pytest

from tests.support import wait_until

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def test_large_batch_is_queued_and_completes(stack):
    response = stack.client.post("/api/generate-posts", json={
        "user_id": "user123",
        "platforms": ["twitter", "facebook", "instagram"],
        "count_per_platform": 5,
        "async": False,
    })
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "content_generation_queued"
    assert ISO.match(body["timestamp"])
    assert body["message"] == "Generating 15 posts in background. Check task status for results."
    task = stack.wait_status(body["task_id"], "SUCCESS", timeout=30)
    assert task["task_id"] == body["task_id"]
    assert task["result"]["count"] == 15
    assert len(task["result"]["posts"]) == 15
    assert ISO.match(task["started_at"])
    assert task["progress"] == {"done": 15, "total": 15}
    for post in task["result"]["posts"]:
        assert {"platform", "text", "length", "limit"} <= post.keys()
        assert post["length"] <= post["limit"]


def test_small_batch_answers_at_once(stack):
    response = stack.client.post("/api/generate-posts", json={
        "user_id": "user123", "platforms": ["twitter"], "count_per_platform": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["posts_generated"] == 2
    assert len(body["posts"]) == 2
    assert all(p["platform"] == "twitter" and p["length"] <= 280 for p in body["posts"])
    assert ISO.match(body["timestamp"])


def test_async_flag_queues_a_small_batch(stack):
    response = stack.client.post("/api/generate-posts", json={
        "user_id": "user123", "platforms": ["bluesky"], "count_per_platform": 1, "async": True})
    assert response.status_code == 202
    stack.wait_status(response.json()["task_id"], "SUCCESS")


def test_threshold_counts_posts_not_platforms(stack):
    # 2 platforms x 5 = 10 posts: at the threshold, so queued.
    response = stack.client.post("/api/generate-posts", json={
        "platforms": ["twitter", "threads"], "count_per_platform": 5})
    assert response.status_code == 202
    # 3 x 3 = 9: under it, answered at once.
    response = stack.client.post("/api/generate-posts", json={
        "platforms": ["twitter", "threads", "mastodon"], "count_per_platform": 3})
    assert response.status_code == 200
    assert response.json()["posts_generated"] == 9


def test_active_tasks_lists_a_running_task(stack):
    task_id = stack.queue(user_id="user123", platforms=["twitter", "linkedin"], count_per_platform=2,
                          book={"title": "SLOW tides"})
    stack.wait_status(task_id, "STARTED")
    body = stack.client.get("/api/tasks/active").json()
    assert body["count"] == len(body["active_tasks"]) >= 1
    entry = next(t for t in body["active_tasks"] if t["task_id"] == task_id)
    assert entry["type"] == stack.mode
    assert entry["name"] == "content_generation"
    assert entry["worker"]
    stack.wait_status(task_id, "SUCCESS", timeout=30)


def test_active_tasks_list_the_oldest_and_count_them_all(stack):
    # A deep backlog is not sent whole: `limit` (default 100) oldest, and how many in all.
    ids = [stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": f"SLOW {n}"})
           for n in range(3)]
    body = stack.client.get("/api/tasks/active", params={"limit": 2}).json()
    assert body["count"] >= 3 and body["limit"] == 2
    assert [t["task_id"] for t in body["active_tasks"]] == ids[:2]
    assert stack.client.get("/api/tasks/active").json()["limit"] == 100
    for bad in ("0", "1001", "x"):
        answer = stack.client.get("/api/tasks/active", params={"limit": bad})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_query"
    for task_id in ids:
        stack.wait_status(task_id, "SUCCESS", timeout=60)


def test_progress_is_streamed_as_posts_are_stored(stack):
    # Posts are stored, and progress reported, in steps (every PROGRESS_STEP seconds and at the
    # end; see tests/writers/test_generation.py): a fast writer may report 4 of 4 at once.
    reader = stack.events()
    reader.wait_open()
    task_id = stack.queue(platforms=["twitter", "facebook"], count_per_platform=2)
    stack.wait_status(task_id, "SUCCESS")
    wait_until(lambda: any(t["status"] == "SUCCESS" for _, t in reader.task_events(task_id)),
               10, "the SUCCESS event")
    reader.close()
    seen = reader.task_events(task_id)
    statuses = [t["status"] for _, t in seen]
    assert statuses[0] == "PENDING" and statuses[-1] == "SUCCESS"
    progress = [t["progress"]["done"] for _, t in seen if t["status"] == "STARTED"]
    assert progress == sorted(progress) and progress[0] == 0 and progress[-1] == 4


def test_unknown_task_is_404(stack):
    for response in (stack.client.get("/api/task-status/nope"),
                     stack.client.post("/api/tasks/revoke/nope", json={})):
        assert response.status_code == 404
        assert response.json()["error"] == "task_not_found"
        assert response.json()["message"]


@pytest.mark.parametrize("body, field", [
    ({"platforms": ["myspace"], "count_per_platform": 1}, "platforms.0"),
    ({"platforms": ["twitter"], "count_per_platform": 0}, "count_per_platform"),
    ({"platforms": ["twitter"], "count_per_platform": 51}, "count_per_platform"),
    ({"platforms": ["twitter"], "count_per_platform": "5"}, "count_per_platform"),
    ({"platforms": [], "count_per_platform": 1}, "platforms"),
    ({"platforms": "twitter", "count_per_platform": 1}, "platforms"),
    ({"platforms": ["twitter"], "async": "yes"}, "async"),
    ({"platforms": ["twitter"], "user_id": ""}, "user_id"),
    ({"platforms": ["twitter"], "book": {"title": ""}}, "book.title"),
])
def test_bad_generate_requests_are_400(stack, body, field):
    response = stack.client.post("/api/generate-posts", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == "invalid_request"
    assert field in error["fields"], error
    assert field in error["message"]


def test_unknown_platform_message_lists_supported_ones(stack):
    response = stack.client.post("/api/generate-posts", json={"platforms": ["myspace"]})
    assert "twitter" in response.json()["message"] and "bluesky" in response.json()["message"]


@pytest.mark.parametrize("raw, code", [
    (b"{not json", "bad_json"), (b"[1, 2]", "bad_json"), (b"", "missing_body"),
    (b"\xff\xfe", "bad_json"),
])
def test_malformed_bodies_are_400(stack, raw, code):
    response = stack.client.post("/api/generate-posts", content=raw,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == code


def test_too_many_posts_in_one_request_is_400(stack):
    response = stack.client.post("/api/generate-posts", json={
        "platforms": ["twitter", "facebook", "instagram", "linkedin", "threads"],
        "count_per_platform": 50})
    assert response.status_code == 400
    assert response.json()["error"] == "batch_too_large"


def test_revoke_finished_task_is_409_and_changes_nothing(stack):
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1)
    before = stack.wait_status(task_id, "SUCCESS")
    response = stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": True})
    assert response.status_code == 409
    assert response.json()["error"] == "task_finished"
    assert stack.task(task_id) == before


def test_autonomous_operations(stack):
    # An author with a finished generation: the daily operations draft their next posts.
    stack.wait_status(stack.queue(platforms=["twitter", "threads"], count_per_platform=1), "SUCCESS")
    response = stack.client.post("/api/autonomous/start")
    assert response.status_code == 200
    assert response.json()["status"] == "autonomous_operation_started"
    assert ISO.match(response.json()["timestamp"])
    response = stack.client.post("/api/autonomous/execute-daily")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "daily_operations_queued"
    assert body["message"] == "Daily operations started in background."
    task = stack.wait_status(body["task_id"], "SUCCESS", timeout=30)
    assert task["type"] == "daily_operations"
    assert task["result"]["authors"] >= 1
    assert task["result"]["by_author"]["manager@example.com"] == 2
    health = stack.client.get("/api/health").json()
    assert health["autonomous_status"]["enabled"] is True
    assert health["autonomous_status"]["last_daily_operations"]["task_id"] == body["task_id"]
    assert stack.client.post("/api/autonomous/stop").json()["status"] == "autonomous_operation_stopped"


def test_health_reports_the_queue_backend(stack):
    response = stack.client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] in ("healthy", "degraded")
    assert {"status", "services", "task_queue_status", "autonomous_status"} <= body.keys()
    queue = body["task_queue_status"]
    assert queue["type"] == stack.mode
    assert isinstance(queue["active_tasks"], int)
    assert queue["workers_alive"] >= 1
    assert body["services"]["database"]["ok"] is True
    assert body["services"]["queue"]["ok"] is True


def _a_generation_finished(stack) -> None:
    """The shared stacks are per test process and the tests run in any order: a test that
    reads finished tasks makes sure its stack has one."""
    stack.wait_status(stack.queue(platforms=["twitter"], count_per_platform=1), "SUCCESS")


def test_stats_keep_the_seed_keys(stack):
    _a_generation_finished(stack)
    body = stack.client.get("/api/tasks/stats").json()
    assert {"max_workers", "active_tasks", "total_tracked"} <= body["thread_pool"].keys()
    assert {"workers", "registered_tasks"} <= body["celery"].keys()
    assert body["backend"] == stack.mode
    assert body["thread_pool"]["total_tracked"] >= 1
    alive = [w for w in body["celery"]["workers"].values() if w["state"] == "alive"]
    assert alive and all("content_generation" in body["celery"]["registered_tasks"][w["id"]]
                         for w in alive)


def test_openapi_and_metrics(stack):
    _a_generation_finished(stack)
    spec = stack.client.get("/openapi.json").json()
    assert "/api/generate-posts" in spec["paths"]
    metrics = stack.client.get("/metrics")
    assert metrics.status_code == 200
    assert 'bma_tasks{status="SUCCESS",type="content_generation"}' in metrics.text
    assert "bma_queue_depth" in metrics.text
    # Run times are observed from the live events, which may reach the web process after
    # the task's SUCCESS is readable.
    wait_until(lambda: "bma_task_duration_seconds_bucket" in stack.client.get("/metrics").text,
               10, "a run time observed")


def test_retry_queues_a_linked_copy_and_timeline_tells_the_story(stack):
    task_id = stack.queue(platforms=["twitter", "facebook"], count_per_platform=2,
                          book={"title": "SLOW retry"})
    stack.wait_status(task_id, "STARTED")
    assert stack.client.post(f"/api/tasks/retry/{task_id}").status_code == 409
    stack.client.post(f"/api/tasks/revoke/{task_id}", json={})
    response = stack.client.post(f"/api/tasks/retry/{task_id}")
    assert response.status_code == 202
    copy = stack.wait_status(response.json()["task_id"], "SUCCESS", timeout=30)
    assert copy["parent_id"] == task_id
    assert copy["params"] == stack.task(task_id)["params"]
    timeline = stack.client.get(f"/api/tasks/{task_id}/timeline").json()["timeline"]
    assert [t["status"] for t in timeline] == ["PENDING", "STARTED", "REVOKED"]
    page = stack.client.get(f"/tasks/{task_id}").text
    assert "Retried as" in page and f'href="/tasks/{copy["task_id"]}"' in page
    posts = stack.client.get(f"/api/tasks/{copy['task_id']}/posts").json()
    assert posts["count"] == 4 and [p["seq"] for p in posts["posts"]] == [0, 1, 2, 3]
    assert stack.client.post("/api/tasks/retry/nope").status_code == 404
