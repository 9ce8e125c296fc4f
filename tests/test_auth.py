"""Accounts, roles, tokens and isolation: nobody sees or stops what is not theirs."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support import PYTHON, ROOT, wait_until

# The iCalendar feed is public by design: its secret URL is the credential (tested with the posts).
PUBLIC_PATHS = {"/login", "/setup", "/healthz", "/openapi.json", "/static/<path:filename>",
                "/calendar/<token>.ics"}


@pytest.fixture(scope="module")
def people(stack):
    """Two authors and a viewer on the shared stack, each with a token and a book."""
    made = {}
    for name, role in (("ada", "author"), ("bob", "author"), ("vera", "viewer")):
        email = f"{name}.{stack.name}@example.com"
        token = stack.create_user(email, role)
        client = stack.client_for(token)
        made[name] = {"email": email, "token": token, "client": client}
        if role == "author":
            response = client.post("/api/books", json={"title": f"{name.title()}'s Book",
                                                       "link": "https://example.com/b"})
            assert response.status_code == 201, response.text
            made[name]["book"] = response.json()
    yield made
    for person in made.values():
        person["client"].close()


def _routes() -> set[tuple[str, str]]:
    """Every (method, rule) the app serves, read from the app itself."""
    code = ("from webapp import create_app\n"
            "app = create_app()\n"
            "for r in app.url_map.iter_rules():\n"
            "    for m in sorted(r.methods - {'HEAD', 'OPTIONS'}):\n"
            "        print(m, r.rule)\n")
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        out = subprocess.run([PYTHON, "-c", code], cwd=tmp, capture_output=True, text=True,
                             env={**env, "DATA_DIR": tmp, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert out.returncode == 0, out.stderr
    return {tuple(line.split(" ", 1)) for line in out.stdout.splitlines()}


def _concrete(rule: str) -> str:
    """A URL of `rule` with every variable filled in, so that the route itself answers."""
    rule = re.sub(r"<int:[^>]+>", "1", rule)
    rule = re.sub(r"<path:[^>]+>", "app.css", rule)
    return re.sub(r"<[^>]+>", "abc", rule)


def test_every_route_refuses_anonymous_requests(stack):
    anonymous = httpx.Client(base_url=stack.base_url, timeout=10, follow_redirects=False)
    checked = 0
    for method, rule in sorted(_routes()):
        if rule in PUBLIC_PATHS:
            continue
        response = anonymous.request(method, _concrete(rule))
        checked += 1
        if rule.startswith("/api/") or rule == "/metrics":
            assert response.status_code == 401, (method, rule, response.status_code)
            assert response.json()["error"] == "unauthorized"
        else:
            assert response.status_code in (302, 303), (method, rule, response.status_code)
            assert response.headers["location"].startswith("/login")
    assert checked > 30
    anonymous.close()


def test_public_health_check_says_only_ok(stack):
    response = httpx.get(stack.base_url + "/healthz")
    assert response.status_code == 200 and response.text == "ok\n"


def test_authors_see_only_their_own_tasks(stack, people):
    ada, bob = people["ada"]["client"], people["bob"]["client"]
    task_id = ada.post("/api/generate-posts", json={"platforms": ["twitter"], "async": True}).json()["task_id"]
    stack.wait_status(task_id, "SUCCESS")
    assert ada.get(f"/api/task-status/{task_id}").status_code == 200
    for path in (f"/api/task-status/{task_id}", f"/api/tasks/{task_id}/posts",
                 f"/api/tasks/{task_id}/timeline"):
        response = bob.get(path)
        assert response.status_code == 404 and response.json()["error"] == "task_not_found"
    assert bob.post(f"/api/tasks/retry/{task_id}").status_code == 404
    assert bob.post(f"/api/tasks/revoke/{task_id}", json={}).status_code == 404
    assert bob.get("/api/tasks", params={"owner": people["ada"]["email"]}).status_code == 403
    listed = bob.get("/api/tasks").json()
    assert all(t["owner"] == people["bob"]["email"] for t in listed["tasks"])
    assert task_id not in {t["task_id"] for t in bob.get("/api/tasks/active").json()["active_tasks"]}
    # A manager sees it.
    assert stack.client.get(f"/api/task-status/{task_id}").status_code == 200


def test_authors_cannot_act_for_someone_else(stack, people):
    ada = people["ada"]["client"]
    response = ada.post("/api/generate-posts", json={
        "user_id": people["bob"]["email"], "platforms": ["twitter"]})
    assert response.status_code == 403
    assert ada.post("/api/generate-posts", json={
        "book_id": people["bob"]["book"]["id"], "platforms": ["twitter"]}).status_code == 404
    assert ada.get(f"/api/books/{people['bob']['book']['id']}").status_code == 404
    assert ada.delete(f"/api/books/{people['bob']['book']['id']}").status_code == 404
    assert [b["id"] for b in ada.get("/api/books").json()["books"]] == [people["ada"]["book"]["id"]]
    # A manager may act for anyone.
    response = stack.client.post("/api/generate-posts", json={
        "user_id": people["bob"]["email"], "platforms": ["twitter"]})
    assert response.status_code == 200


def test_event_stream_carries_only_what_the_subscriber_may_see(stack, people):
    bob_stream = stack.events(token=people["bob"]["token"])
    manager_stream = stack.events()
    wait_until(lambda: bob_stream.comments and manager_stream.comments, 10, "streams to open")
    ada_task = people["ada"]["client"].post(
        "/api/generate-posts", json={"platforms": ["twitter"], "async": True}).json()["task_id"]
    bob_task = people["bob"]["client"].post(
        "/api/generate-posts", json={"platforms": ["twitter"], "async": True}).json()["task_id"]
    stack.wait_status(ada_task, "SUCCESS")
    stack.wait_status(bob_task, "SUCCESS")
    wait_until(lambda: bob_stream.task_events(bob_task) and manager_stream.task_events(ada_task),
               10, "events to arrive")
    bob_stream.close()
    manager_stream.close()
    owners = {d["task"]["owner"] for _, kind, d in bob_stream.events if kind == "task"}
    assert owners == {people["bob"]["email"]}


def test_authors_read_health_without_other_peoples_task_ids(stack, people):
    # A task that stays running (its model call hangs) until the test is over.
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL secret"})
    wait_until(lambda: task_id in stack.running(), 10, "the task to run")
    for path in ("/api/health", "/api/tasks/stats"):
        body = people["ada"]["client"].get(path)
        assert body.status_code == 200
        assert task_id not in body.text
    assert task_id in stack.client.get("/api/health").text  # a manager sees it


def test_viewer_watches_but_cannot_act(stack, people):
    vera = people["vera"]["client"]
    assert vera.get("/api/health").status_code == 200
    assert vera.get("/api/tasks").status_code == 200
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1)
    for method, path, body in (("POST", "/api/generate-posts", {"platforms": ["twitter"]}),
                               ("POST", f"/api/tasks/revoke/{task_id}", {}),
                               ("POST", f"/api/tasks/retry/{task_id}", {}),
                               ("POST", "/api/autonomous/start", None),
                               ("POST", "/api/books", {"title": "x"})):
        response = vera.request(method, path, json=body)
        assert response.status_code == 403, (path, response.status_code)
        assert response.json()["error"] == "forbidden"


def test_manager_only_operations(stack, people):
    ada = people["ada"]["client"]
    for path in ("/api/autonomous/start", "/api/autonomous/execute-daily", "/api/users"):
        assert ada.post(path, json={"email": "x@example.com", "role": "author"}).status_code == 403
    assert ada.get("/api/audit").status_code == 403
    assert stack.client.get("/api/audit").status_code == 200


def test_operator_actions_are_audited(stack):
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "SLOW audit"})
    stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": True})
    entries = stack.client.get("/api/audit").json()["entries"]
    entry = next(e for e in entries if e["target"] == task_id)
    assert entry["action"] == "task.stop" and entry["actor"] == "manager@example.com"
    stack.client.post("/api/autonomous/stop")
    stack.client.post("/api/autonomous/start")
    stack.client.post("/api/autonomous/stop")
    actions = [e["action"] for e in stack.client.get("/api/audit").json()["entries"][:2]]
    assert actions == ["autonomous.stop", "autonomous.start"]


def test_tokens_are_shown_once_and_can_be_revoked(stack, people):
    ada = people["ada"]["client"]
    created = ada.post("/api/tokens", json={"name": "script"})
    assert created.status_code == 201
    token = created.json()["token"]
    listed = ada.get("/api/tokens").json()["tokens"]
    assert all("token" not in t for t in listed)
    script = stack.client_for(token)
    assert script.get("/api/me").json()["email"] == people["ada"]["email"]
    assert ada.delete(f"/api/tokens/{created.json()['id']}").status_code == 200
    assert script.get("/api/me").status_code == 401
    script.close()


def test_cookie_login_and_cross_site_refusal(stack, people):
    email = f"cookie.{stack.name}@example.com"
    stack.create_user(email, "author", password="a long password here")
    browser = httpx.Client(base_url=stack.base_url, timeout=10)
    bad = browser.post("/login", data={"email": email, "password": "wrong password"})
    assert bad.status_code == 401
    good = browser.post("/login", data={"email": email, "password": "a long password here", "next": "/"})
    assert good.status_code in (302, 303)
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert browser.get("/api/me").json()["email"] == email
    forged = browser.post("/api/books", json={"title": "forged"},
                          headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    assert forged.status_code == 403 and forged.json()["error"] == "cross_site_request"
    same = browser.post("/api/books", json={"title": "mine"}, headers={"Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 201
    browser.close()


def test_failed_logins_are_rate_limited(stack):
    email = f"target.{stack.name}@example.com"
    client = httpx.Client(base_url=stack.base_url, timeout=10)
    codes = [client.post("/login", data={"email": email, "password": "guess"}).status_code
             for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[-1] == 429
    client.close()


def test_security_headers(stack):
    response = stack.client.get("/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"


def test_oversized_body_is_413(stack):
    response = stack.client.post("/api/generate-posts", content=b"{" + b" " * 300_000 + b"}",
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]


def test_first_run_asks_for_the_first_manager(fresh_stack):
    stack = fresh_stack("embedded")
    stack.start_web()  # no account yet
    browser = httpx.Client(base_url=stack.base_url, timeout=10)
    assert browser.get("/").headers["location"] == "/setup"
    assert "create-user" in browser.get("/api/tasks").json()["message"]
    response = browser.post("/setup", data={"email": "first@example.com", "password": "short"})
    assert response.status_code == 400
    response = browser.post("/setup", data={"email": "first@example.com", "password": "long enough for sure"})
    assert response.status_code in (302, 303)
    me = browser.get("/api/me").json()
    assert {k: me[k] for k in ("id", "email", "role")} == {"id": 1, "email": "first@example.com",
                                                          "role": "manager"}
    late = httpx.post(stack.base_url + "/setup", data={"email": "second@example.com",
                                                       "password": "long enough for sure"})
    assert late.status_code in (302, 303) and late.headers["location"] == "/login"
    browser.close()


def test_generation_requests_are_rate_limited_per_user(fresh_stack):
    stack = fresh_stack("embedded", GENERATION_RATE_LIMIT="3").start()
    codes = [stack.client.post("/api/generate-posts", json={"platforms": ["twitter"]})
             for _ in range(4)]
    assert [r.status_code for r in codes[:3]] == [200, 200, 200]
    assert codes[3].status_code == 429
    assert int(codes[3].headers["retry-after"]) >= 1
    assert codes[3].json()["error"] == "rate_limited"


# `make test` fuzzes the stricter database (PostgreSQL refuses NUL and integers past 64 bits;
# the validation in front of both is the same); `make fuzz` both, longer.
FUZZED_DATABASES = ["embedded", "postgres"] if os.environ.get("FUZZ_EXAMPLES") else ["postgres"]


@pytest.mark.timeout(420)  # a minute or two on its own; longer beside other tests (pytest -n)
@pytest.mark.parametrize("kind", FUZZED_DATABASES)
def test_fuzzed_api_never_answers_5xx(fresh_stack, tmp_path, kind):
    """Schemathesis over the OpenAPI document: the coverage phase's boundary values (huge and
    negative ints, empty and odd strings, wrong types), then random cases with NUL bytes
    allowed. `make test` runs the JSON API on PostgreSQL with 3 random cases per operation
    (about a minute on a busy 2-core machine); `make fuzz` every path with 100, on SQLite
    and PostgreSQL."""
    stack = fresh_stack(kind, LLM_PROVIDER="offline").start()  # the built-in writer is quick
    # A manager and token of its own, made after others: the ids the coverage phase tries
    # (0, 1, the maximum) are never the fuzzer's own account or token.
    for n in range(3):
        stack.create_user(f"bystander{n}@example.com", "author")
    token = stack.create_user("fuzzer@example.com", "manager")
    paths = [] if os.environ.get("FUZZ_ALL_PATHS") else ["--include-path-regex", "^/(api/|metrics$)"]
    result = subprocess.run(
        [str(Path(PYTHON).parent / "schemathesis"), "run", stack.base_url + "/openapi.json",
         "--checks", "not_a_server_error", "--phases", "coverage,fuzzing", "--mode", "all",
         "--max-examples", os.environ.get("FUZZ_EXAMPLES", "3"), "--generation-allow-x00", "true",
         "--workers", "2", "-H", f"Authorization: Bearer {token}", "--request-timeout", "20",
         *paths, "--exclude-path-regex", "(^/api/events$|/stream$)"],  # streams never end
        capture_output=True, text=True, cwd=tmp_path)
    out = result.stdout
    failures = out[out.find("= FAILURES ="):out.find("= WARNINGS =")] if "= FAILURES =" in out else out
    # Which request failed and the server's own account of it (the fuzzer's replay files
    # go with tmp_path): the errors it logged, each with its traceback.
    errors = re.findall(r"^\S+ \S+ - ERROR - .*?(?=^\d{4}-\d\d-\d\d |\Z)", stack.web.log(),
                        re.MULTILINE | re.DOTALL)
    assert result.returncode == 0, failures[:6000] + "\n--- errors the web logged ---\n" \
        + "".join(errors)[-8000:]
