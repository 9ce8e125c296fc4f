"""Every destructive form asks first, also without JavaScript: a plain post (no `confirmed`,
no htmx) gets the server's confirmation page and changes nothing; the page's button posts
the same form again with `confirmed=yes`. Every page form route is classed here, so a new
one cannot slip by unasked. (tests/browser/test_confirmations.py clicks through them.)"""
from __future__ import annotations

import re

import httpx
import pytest

from tests.test_auth import _routes

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)

PASSWORD = "a long password"
# Forms that create, undo, or act on a person's explicit typing: nothing to ask.
HARMLESS = {"/login", "/logout", "/setup", "/generate", "/users", "/books", "/books/<int:book_id>",
            "/books/<int:book_id>/campaign", "/posts/schedule", "/posts/approve-plan",
            "/account/tokens", "/account/password", "/autonomous/start", "/autonomous/run-daily",
            "/queue/resume", "/workers/<worker_id>/undrain", "/schedules/<name>/run"}


def _signed_in(stack, email: str, role: str) -> httpx.Client:
    made = stack.client.post("/api/users", json={"email": email, "role": role, "password": PASSWORD})
    assert made.status_code == 201, made.text
    client = httpx.Client(base_url=stack.base_url, timeout=15)
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code in (302, 303)
    return client


def _asks(answer: httpx.Response, path: str) -> bool:
    return (answer.status_code == 200 and 'name="confirmed" value="yes"' in answer.text
            and f'action="{path}"' in answer.text)


def test_every_destructive_form_asks_first_without_javascript(stack):
    manager = _signed_in(stack, f"asks.chief.{stack.name}@example.com", "manager")
    author_email = f"asks.author.{stack.name}@example.com"
    author = _signed_in(stack, author_email, "author")
    # A task that waits (its type is paused) for as long as the test needs it.
    assert stack.client.post("/api/queue/pause", json={"type": "weekly_report"}).status_code == 200
    try:
        task_id = stack.client.post("/api/reports/weekly").json()["task_id"]
        _ask_everything(stack, manager, author, author_email, task_id)
    finally:
        stack.client.post("/api/queue/resume", json={"type": "weekly_report"})
        for client in (manager, author):
            client.close()


def _ask_everything(stack, manager, author, author_email: str, task_id: str) -> None:
    user_id = next(u["id"] for u in stack.client.get("/api/users").json()["users"]
                   if u["email"] == author_email)
    book = stack.client.post("/api/books", json={"title": "Asked First", "user_id": author_email}).json()
    made = stack.client.post("/api/generate-posts", json={"platforms": ["twitter"], "count_per_platform": 1,
                                                          "user_id": author_email, "book_id": book["id"]})
    post = stack.client.get("/api/posts", params={"owner": author_email}).json()["posts"][0]
    author.post("/account/tokens", data={"name": "script"})
    token_id = re.search(r'/account/tokens/(\d+)/revoke', author.get("/account").text).group(1)
    assert made.status_code == 200 and stack.client.patch(f"/api/posts/{post['id']}",
                                                          json={"status": "approved"}).status_code == 200
    autonomous_on = stack.client.post("/api/autonomous/start")
    assert autonomous_on.status_code in (200, 202), autonomous_on.text

    asked = {  # rule: (who, the path, the form)
        "/users/<int:user_id>": [(manager, f"/users/{user_id}", {"action": "disable"}),
                                 (manager, f"/users/{user_id}", {"action": "role", "role": "viewer"}),
                                 (manager, f"/users/{user_id}", {"action": "password"})],
        "/books/<int:book_id>/delete": [(author, f"/books/{book['id']}/delete", {})],
        "/posts/<int:post_id>": [(author, f"/posts/{post['id']}", {"status": "published"})],
        "/account/tokens/<int:token_id>/revoke": [(author, f"/account/tokens/{token_id}/revoke", {})],
        "/account/calendar-url": [(author, "/account/calendar-url", {})],
        "/account/sessions/end": [(author, "/account/sessions/end", {})],
        "/tasks/<task_id>/revoke": [(manager, f"/tasks/{task_id}/revoke", {"terminate": "1"})],
        "/tasks/<task_id>/retry": [(manager, f"/tasks/{task_id}/retry", {})],
        "/tasks/bulk": [(manager, "/tasks/bulk", {"action": "revoke", "status": "PENDING",
                                                   "type": "weekly_report"})],
        "/queue/pause": [(manager, "/queue/pause", {}), (manager, "/queue/pause", {"type": "weekly_report"})],
        "/workers/<worker_id>/drain": [(manager, "/workers/w1/drain", {})],
        "/autonomous/stop": [(manager, "/autonomous/stop", {})],
    }
    forms = {rule for method, rule in _routes() if method == "POST" and not rule.startswith("/api/")}
    assert forms - HARMLESS == set(asked), "a page form is neither asked first nor harmless"

    for rule, cases in asked.items():
        for client, path, form in cases:
            assert _asks(client.post(path, data=form), "/tasks/bulk" if rule == "/tasks/bulk" else path), (rule, form)

    # Asking changed nothing.
    account = stack.client.get(f"/api/users/{user_id}").json()
    assert not account["disabled"] and account["role"] == "author"
    assert stack.client.get(f"/api/books/{book['id']}").status_code == 200
    assert stack.client.get(f"/api/posts/{post['id']}").json()["status"] == "approved"
    assert stack.task(task_id)["status"] == "PENDING"
    health = stack.client.get("/api/health").json()
    assert set(health["task_queue_status"]["paused"]) == {"weekly_report"}
    assert health["autonomous_status"]["enabled"]
    assert author.get("/account").status_code == 200  # still signed in
    assert "revoked" not in author.get("/account").text

    # The confirmation page's button does it.
    assert author.post(f"/books/{book['id']}/delete", data={"confirmed": "yes"}).status_code == 303
    assert stack.client.get(f"/api/books/{book['id']}").status_code == 404
    assert manager.post("/autonomous/stop", data={"confirmed": "yes"}).status_code == 303
    assert not stack.client.get("/api/health").json()["autonomous_status"]["enabled"]
    # With scripts the browser asked (hx-confirm): an htmx request acts at once.
    stopped = manager.post(f"/tasks/{task_id}/revoke", data={"terminate": "1"}, headers={"HX-Request": "true"})
    assert stopped.status_code == 200 and "requested" in stopped.text
    stack.wait_status(task_id, "REVOKED")
