"""A model that refuses or stays unavailable fails the task (or the request), never passes
offline posts off as its own: against the fake model server, in every queue mode (worker
processes in the Redis ones)."""
from __future__ import annotations

import pytest

# LLM_RETRIES_RATE_LIMITED and LLM_RETRIES_SERVER at their defaults.
ATTEMPTS = {429: 5, 500: 3}


def _queue_failing(stack, status: int, label: str) -> str:
    return stack.queue(platforms=["twitter"], count_per_platform=2,
                       book={"title": f"MODEL-FAILS-{status} {label}"})


def _timeline(stack, task_id: str) -> list[dict]:
    response = stack.client.get(f"/api/tasks/{task_id}/timeline")
    assert response.status_code == 200, response.text
    return response.json()["timeline"]


@pytest.mark.parametrize("status, says", [(401, "check LLM_API_KEY"), (404, "check LLM_MODEL")])
def test_a_refusing_model_fails_the_task_at_once(stack, fake_llm, status, says):
    asked_before = fake_llm.failures[status]
    task_id = _queue_failing(stack, status, stack.name)
    task = stack.wait_status(task_id, {"SUCCESS", "FAILURE"})
    assert task["status"] == "FAILURE", task
    assert task["error"]["type"] == "model"
    assert task["error"]["message"].startswith(f"HTTP {status} from openai: ") and says in task["error"]["message"]
    assert "traceback" not in task["error"]
    assert fake_llm.failures[status] - asked_before == 1  # not retried
    assert task["result"] is None  # no offline posts standing in for the model's
    timeline = _timeline(stack, task_id)
    assert [step["status"] for step in timeline] == ["PENDING", "STARTED", "FAILURE"]
    assert timeline[-1]["detail"] == f"model: {task['error']['message']}"


@pytest.mark.parametrize("status", [429, 500])
def test_transient_errors_are_retried_then_fail_with_every_attempt_in_the_timeline(
        stack, fake_llm, status):
    asked_before = fake_llm.failures[status]
    task_id = _queue_failing(stack, status, stack.name)
    task = stack.wait_status(task_id, {"SUCCESS", "FAILURE"})
    assert task["status"] == "FAILURE", task
    attempts = ATTEMPTS[status]
    assert task["error"] == {"type": "model", "message": f"HTTP {status} from openai after "
                                                         f"{attempts} attempts; retries ran out"}
    assert fake_llm.failures[status] - asked_before == attempts
    assert task["result"] is None
    timeline = _timeline(stack, task_id)
    retried = [step["detail"] for step in timeline if (step["detail"] or "").startswith("model call failed")]
    assert retried == [f"model call failed: HTTP {status} from openai; retrying in 0.0s (attempt {n})"
                       for n in range(2, attempts + 1)]
    assert timeline[-1]["status"] == "FAILURE" and "retries ran out" in timeline[-1]["detail"]


def test_a_small_batch_answers_the_model_error_as_json(stack, fake_llm):
    before = stack.client.get("/api/posts").json()["total"]
    for status, code, error in [(401, 502, "model_error"), (404, 502, "model_error"),
                                (429, 503, "model_unavailable"), (500, 503, "model_unavailable")]:
        answer = stack.client.post("/api/generate-posts", json={
            "platforms": ["twitter", "mastodon"], "count_per_platform": 1,
            "book": {"title": f"MODEL-FAILS-{status} now"}})
        assert answer.status_code == code, answer.text
        body = answer.json()
        assert body["error"] == error and f"HTTP {status} from openai" in body["message"]
        if code == 503:
            assert int(answer.headers["Retry-After"]) > 0
    assert stack.client.get("/api/posts").json()["total"] == before  # nothing stored
