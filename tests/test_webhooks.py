"""Completion webhooks: a `callback_url` on a request that creates a task gets its record,
signed, when the task ends (received by a local HTTP server, pytest-httpserver)."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from werkzeug import Response

from tests.support import wait_until

EMBEDDED = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


def _verify(secret: str, request) -> dict:
    """What a receiver does: check the signature and its freshness, then read the record."""
    parts = dict(p.split("=", 1) for p in request.headers["X-Signature"].split(","))
    body = request.get_data()
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(time.time() - int(parts["t"])) < 300  # a replayed old delivery is refused
    return json.loads(body)


def test_a_finished_task_posts_its_signed_record_to_its_callback(stack, httpserver):
    httpserver.expect_request("/done", method="POST").respond_with_data("thanks")
    response = stack.client.post("/api/generate-posts", json={
        "platforms": ["twitter"], "count_per_platform": 1, "async": True,
        "callback_url": httpserver.url_for("/done")})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    stack.wait_status(task_id, "SUCCESS")
    wait_until(lambda: httpserver.log, 15, "the webhook delivery")
    secret = stack.client.get("/api/webhook-secret").json()["secret"]
    record = _verify(secret, httpserver.log[0][0])
    # Sent to the address the name was checked at, under its own name.
    assert httpserver.log[0][0].headers["Host"] == f"{httpserver.host}:{httpserver.port}"
    assert record["task_id"] == task_id and record["status"] == "SUCCESS"
    assert record["result"]["count"] == 1
    assert "callback_url" not in record["params"]
    assert record["worker"].startswith("worker ")  # the receiver is outside: an alias
    assert record["worker"] != stack.task(task_id)["worker"]

    hook = wait_until(lambda: (h := stack.client.get(f"/api/tasks/{task_id}/deliveries")
                               .json()["webhook"])["state"] == "delivered" and h, 10, "delivered")
    assert hook["attempts"][0]["status_code"] == 200 and hook["attempts"][0]["response"] == "thanks"
    page = stack.client.get(f"/tasks/{task_id}", headers={"Accept": "text/html"}).text
    assert 'data-webhook-state="delivered"' in page and "HTTP 200" in page


@EMBEDDED
def test_a_refused_delivery_is_retried_with_backoff(stack, httpserver):
    httpserver.expect_ordered_request("/flaky").respond_with_response(Response("down", status=500))
    httpserver.expect_ordered_request("/flaky").respond_with_data("ok")
    response = stack.client.post("/api/status-check", json={"callback_url": httpserver.url_for("/flaky")})
    task_id = response.json()["task_id"]
    hook = wait_until(lambda: (h := stack.client.get(f"/api/tasks/{task_id}/deliveries")
                               .json()["webhook"])["state"] == "delivered" and h, 20, "the retry")
    assert [a["status_code"] for a in hook["attempts"]] == [500, 200]
    assert len(httpserver.log) == 2


@EMBEDDED
def test_retry_and_daily_operations_take_a_callback_too(stack, httpserver):
    httpserver.expect_request("/any", method="POST").respond_with_data("ok")
    url = httpserver.url_for("/any")
    daily = stack.client.post("/api/autonomous/execute-daily", json={"callback_url": url})
    assert daily.status_code == 202
    wait_until(lambda: stack.client.get(f"/api/tasks/{daily.json()['task_id']}/deliveries")
               .json()["webhook"]["state"] == "delivered", 20, "the daily operations' delivery")
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL hook"})
    stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": True})
    retried = stack.client.post(f"/api/tasks/retry/{task_id}", json={"callback_url": url})
    assert retried.status_code == 202
    assert stack.client.get(f"/api/tasks/{retried.json()['task_id']}/deliveries").json()["webhook"]


@EMBEDDED
@pytest.mark.parametrize("url", ["ftp://example.com/x", "javascript:alert(1)", "not a url",
                                 "http://" + "a" * 2100 + ".com/", 42])
def test_only_http_and_https_callbacks_are_taken(stack, url):
    before = stack.client.get("/api/tasks", params={"per_page": 1}).json()["total"]
    response = stack.client.post("/api/status-check", json={"callback_url": url})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and "callback_url" in response.json()["fields"]
    assert stack.client.get("/api/tasks", params={"per_page": 1}).json()["total"] == before


@EMBEDDED
def test_the_secret_is_per_user_and_can_be_rotated(stack):
    first = stack.client.get("/api/webhook-secret").json()["secret"]
    assert stack.client.get("/api/webhook-secret").json()["secret"] == first
    author = stack.client_for(stack.create_user("hook-author@example.com", "author"))
    assert author.get("/api/webhook-secret").json()["secret"] != first
    rotated = stack.client.post("/api/webhook-secret").json()["secret"]
    assert rotated != first and stack.client.get("/api/webhook-secret").json()["secret"] == rotated


def test_private_addresses_are_not_posted_to_unless_allowed(fresh_stack, httpserver):
    """Any user may give a callback_url, and its answers are shown to them: a server that
    posted to its own network would let them read services only reachable from inside."""
    httpserver.expect_request("/inside", method="POST").respond_with_data("secret inside")
    stack = fresh_stack("embedded", WEBHOOK_PRIVATE_ADDRESSES="false").start()
    response = stack.client.post("/api/status-check", json={"callback_url": httpserver.url_for("/inside")})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    hook = wait_until(lambda: (h := stack.client.get(f"/api/tasks/{task_id}/deliveries")
                               .json()["webhook"])["attempts"] and h, 20, "the first attempt")
    attempt = hook["attempts"][0]
    assert attempt["error"].startswith("refused: localhost is at 127.0.0.1, not a public address")
    assert attempt["status_code"] is None and attempt["response"] is None
    assert not httpserver.log


def test_a_delivery_goes_to_the_address_its_host_was_checked_at(monkeypatch):
    """Resolved once: a name that answers a public address to the check and a private one to
    the connection (DNS rebinding) is still posted to the public one."""
    from jobs import webhooks
    answers = iter(["93.184.215.14", "127.0.0.1"])
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda host, port, **kw: [
        (2, 1, 6, "", (next(answers), port))])
    target, host, tls_name = webhooks.pinned("https://hooks.example.com:8443/done?x=1", False)
    assert target == "https://93.184.215.14:8443/done?x=1"
    assert (host, tls_name) == ("hooks.example.com:8443", "hooks.example.com")
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda host, port, **kw: [
        (2, 1, 6, "", ("93.184.215.14", port)), (2, 1, 6, "", ("10.0.0.5", port))])
    with pytest.raises(webhooks.Refused, match="hooks.example.com is at 10.0.0.5"):
        webhooks.pinned("https://hooks.example.com/done", False)
