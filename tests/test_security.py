"""Sign-in throttling, server-side sessions, user management, redirects, input edges, role
views, proxies, login CSRF, first-run setup and the OpenAPI document (the security issue)."""
from __future__ import annotations

import concurrent.futures
import statistics
import time

import httpx
import pytest
import redis

from tests.support import wait_until

PASSWORD = "correct horse battery"


def _browser(stack, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, timeout=20, **kwargs)


def _signed_in(stack, email: str, password: str = PASSWORD) -> httpx.Client:
    browser = _browser(stack)
    response = browser.post("/login", data={"email": email, "password": password})
    assert response.status_code in (302, 303), response.text
    return browser


def _ensure_user(stack, email: str, role: str = "author") -> str:
    """An account on a shared stack, made by whichever test asks first."""
    response = stack.client.post("/api/users", json={"email": email, "role": role, "password": PASSWORD})
    assert response.status_code in (201, 409), response.text
    return email


def _user_id(stack, email: str) -> int:
    return next(u["id"] for u in stack.client.get("/api/users").json()["users"] if u["email"] == email)


def _audited(stack, action: str, target: str) -> bool:
    return any(e["action"] == action and e["target"] == target
               for e in stack.client.get("/api/audit").json()["entries"])


# -- 1. sign-in throttling --

def test_throttled_sign_in_refuses_the_right_password_and_costs_nothing(fresh_stack):
    stack = fresh_stack("redis", LOGIN_ATTEMPTS_PER_ACCOUNT="3", LOGIN_ATTEMPTS_PER_ADDRESS="6",
                        TRUSTED_PROXIES="1").start()
    for n in range(8):
        _ensure_user(stack, f"user{n}@example.com")
    client = _browser(stack)

    def login(email: str, password: str, address: str = "203.0.113.1") -> httpx.Response:
        return client.post("/login", data={"email": email, "password": password},
                           headers={"X-Forwarded-For": address})

    wrong = [login("user0@example.com", "not the password") for _ in range(3)]
    assert [r.status_code for r in wrong] == [401] * 3
    throttled = login("user0@example.com", PASSWORD)
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1
    assert "text/html" in throttled.headers["content-type"] and "Too many" in throttled.text
    # The limit is kept in Redis, so every web process sees it.
    shared = redis.Redis.from_url(stack.env["REDIS_URL"])
    # The three wrong passwords, each its own entry; the refused attempt is not recorded.
    assert shared.zcard("bma:limit:login:account:user0@example.com") == 3
    shared.close()

    def median(email: str, password: str, address: str, n: int) -> tuple[float, int]:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            response = login(email, password, address)
            times.append(time.perf_counter() - started)
        return statistics.median(times), response.status_code

    # A refused attempt answers without checking a password (argon2 costs ~50-100 ms).
    refused, status = median("user0@example.com", PASSWORD, "203.0.113.1", 5)
    assert status == 429
    checked, status = median("user1@example.com", "not the password", "198.51.100.7", 2)
    assert status == 401
    assert refused < checked / 2, (refused, checked)

    # One password sprayed over many accounts from one address is throttled too...
    codes = [login(f"user{n}@example.com", "Summer2026!!", "192.0.2.9").status_code for n in range(2, 8)]
    assert codes[:6] == [401] * 6
    assert login("user2@example.com", PASSWORD, "192.0.2.9").status_code == 429
    # ...while other addresses (told apart through the trusted proxy) still sign in.
    assert login("user2@example.com", PASSWORD, "192.0.2.10").status_code in (302, 303)
    client.close()


def test_successful_sign_ins_do_not_use_up_the_limit(fresh_stack):
    stack = fresh_stack("embedded", LOGIN_ATTEMPTS_PER_ACCOUNT="2").start()
    _ensure_user(stack, "often@example.com")
    for _ in range(5):
        _signed_in(stack, "often@example.com").close()


# -- 2. sessions and users --

def test_sessions_end_at_once(stack):
    email = f"sec-sessions.{stack.name}@example.com"
    stack.create_user(email, "author")
    first, second = _signed_in(stack, email), _signed_in(stack, email)
    copied = dict(first.cookies)
    assert len(first.get("/api/me/sessions").json()["sessions"]) == 2
    # Logging out ends that session on the server: a copy of the cookie is worthless.
    assert first.post("/logout").status_code in (302, 303)
    replay = _browser(stack, cookies=copied)
    assert replay.get("/api/me").status_code == 401
    assert second.get("/api/me").status_code == 200
    # "Sign out everywhere".
    third = _signed_in(stack, email)
    assert third.delete("/api/me/sessions").json()["sessions_ended"] == 2
    assert second.get("/api/me").status_code == 401 and third.get("/api/me").status_code == 401
    assert _audited(stack, "session.end", email) and _audited(stack, "session.end_all", email)
    for client in (first, second, third, replay):
        client.close()


def test_password_change_ends_other_sessions(stack):
    email = f"sec-change.{stack.name}@example.com"
    stack.create_user(email, "author")
    mine, other = _signed_in(stack, email), _signed_in(stack, email)
    refused = mine.post("/api/me/password", json={"current_password": "not it",
                                                  "new_password": "a brand new password"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_password"
    short = mine.post("/api/me/password", json={"current_password": PASSWORD, "new_password": "short one"})
    assert short.status_code == 400
    done = mine.post("/api/me/password", json={"current_password": PASSWORD,
                                               "new_password": "a brand new password"})
    assert done.json() == {"changed": True, "sessions_ended": 1}
    assert mine.get("/api/me").status_code == 200 and other.get("/api/me").status_code == 401
    assert _browser(stack).post("/login", data={"email": email, "password": PASSWORD}).status_code == 401
    _signed_in(stack, email, "a brand new password").close()
    assert _audited(stack, "password.change", email)
    mine.close()
    other.close()


def test_managers_disable_enable_change_roles_and_reset_passwords(stack):
    email = f"sec-managed.{stack.name}@example.com"
    token = stack.create_user(email, "author")
    user_id = _user_id(stack, email)
    script, browser = stack.client_for(token), _signed_in(stack, email)
    assert script.get("/api/me").status_code == 200

    disabled = stack.client.patch(f"/api/users/{user_id}", json={"disabled": True})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert script.get("/api/me").status_code == 401  # tokens stop at once
    assert browser.get("/api/me").status_code == 401  # and sessions end
    assert _browser(stack).post("/login", data={"email": email, "password": PASSWORD}).status_code == 401

    assert stack.client.patch(f"/api/users/{user_id}", json={"disabled": False}).status_code == 200
    assert script.get("/api/me").json()["role"] == "author"
    assert stack.client.patch(f"/api/users/{user_id}", json={"role": "viewer"}).json()["role"] == "viewer"
    assert script.get("/api/me").json()["role"] == "viewer"
    assert script.post("/api/books", json={"title": "no"}).status_code == 403

    browser = _signed_in(stack, email)
    reset = stack.client.post(f"/api/users/{user_id}/password", json={})
    assert reset.status_code == 200 and reset.json()["sessions_ended"] == 1
    assert browser.get("/api/me").status_code == 401
    _signed_in(stack, email, reset.json()["password"]).close()

    for action in ("user.disable", "user.enable", "user.role", "user.password_reset"):
        assert _audited(stack, action, email), action
    assert stack.client.patch("/api/users/999999", json={"role": "author"}).status_code == 404
    assert script.patch(f"/api/users/{user_id}", json={"role": "manager"}).status_code == 403
    script.close()
    browser.close()


def test_the_last_manager_stays(fresh_stack):
    stack = fresh_stack("embedded").start()
    me = _user_id(stack, "manager@example.com")
    demoted = stack.client.patch(f"/api/users/{me}", json={"role": "author"})
    assert demoted.status_code == 409 and "last active manager" in demoted.json()["message"]
    assert stack.client.get("/api/me").json()["role"] == "manager"


def test_users_page(stack):
    email = f"sec-page.{stack.name}@example.com"
    stack.create_user(email, "author")
    manager = _signed_in(stack, "manager@example.com")
    page = manager.get("/users")
    assert page.status_code == 200 and email in page.text
    assert page.headers["cache-control"] == "no-store"
    user_id = _user_id(stack, email)
    # Without JavaScript a destructive change is asked first, by a page that posts it again.
    for change in ({"action": "password"}, {"action": "disable"}, {"action": "role", "role": "viewer"}):
        asked = manager.post(f"/users/{user_id}", data=change)
        assert asked.status_code == 200 and 'name="confirmed" value="yes"' in asked.text
        assert email in asked.text and f'action="/users/{user_id}"' in asked.text
    account = stack.client.get(f"/api/users/{user_id}").json()
    assert not account["disabled"] and account["role"] == "author"
    reset = manager.post(f"/users/{user_id}", data={"action": "password", "confirmed": "yes"})
    assert reset.status_code == 200 and "not shown again" in reset.text
    assert reset.headers["cache-control"] == "no-store"
    assert manager.post(f"/users/{user_id}", data={"action": "disable", "confirmed": "yes"}).status_code == 200
    assert next(u for u in stack.client.get("/api/users").json()["users"] if u["id"] == user_id)["disabled"]
    assert manager.post(f"/users/{user_id}", data={"action": "enable"}).status_code == 200
    added = manager.post("/users", data={"email": f"sec-added.{stack.name}@example.com",
                                         "role": "viewer", "password": "twelve chars!"})
    assert added.status_code == 200 and f"sec-added.{stack.name}@example.com" in added.text
    bad = manager.post("/users", data={"email": "not an address", "role": "viewer"})
    assert bad.status_code == 400 and "not an email address" in bad.text
    manager.close()


def test_authors_cannot_open_the_users_page(stack):
    email = _ensure_user(stack, f"sec-nosy-users.{stack.name}@example.com")
    author = _signed_in(stack, email)
    assert author.get("/users").status_code == 403
    assert author.post(f"/users/{_user_id(stack, email)}", data={"action": "enable"}).status_code == 403
    assert "/users" not in author.get("/").text
    author.close()


# -- 3. redirects --

@pytest.mark.parametrize("target", [
    "//evil.example.com", "/\\evil.example.com", "/\t/evil.example.com", "https://evil.example.com",
    "/\r\nLocation: https://evil.example.com", "javascript:alert(1)", "/\\\\evil.example.com",
    " /x", "/x\u2028", "/\x00"])
def test_sign_in_redirects_only_to_our_own_paths(stack, target):
    email = _ensure_user(stack, f"sec-next.{stack.name}@example.com")
    response = _browser(stack).post("/login", data={"email": email, "password": PASSWORD,
                                                    "next": target})
    if "\x00" in target:
        assert response.status_code == 400
    else:
        assert response.status_code == 302 and response.headers["location"] == "/"


def test_local_redirects_are_kept(stack):
    email = _ensure_user(stack, f"sec-keep.{stack.name}@example.com")
    response = _browser(stack).post("/login", data={"email": email, "password": PASSWORD,
                                                    "next": "/tasks?status=FAILURE"})
    assert response.headers["location"] == "/tasks?status=FAILURE"


def test_confirmation_pages_go_back_only_to_our_own_paths(stack):
    manager = _signed_in(stack, "manager@example.com")
    for back in ("//evil.example.com", "/\\evil.example.com", "/\t/evil.example.com"):
        task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL"})
        response = manager.post(f"/tasks/{task_id}/revoke",
                                data={"confirmed": "yes", "back": back, "terminate": "1"})
        assert response.status_code == 303 and not response.headers["location"].startswith(("//", "/\\"))
        assert "evil" not in response.headers["location"]
    manager.close()


# -- 4 and 5. input edges and links --

JSON_EDGES = [
    ("POST", "/api/books", {"title": "nul\x00byte"}),
    ("POST", "/api/books", {"title": "ok", "keywords": ["a\x00"]}),
    ("POST", "/api/generate-posts", {"platforms": ["twitter"], "book_id": 10**20}),
    ("POST", "/api/generate-posts", {"platforms": ["twitter"], "book": {"title": "\x00"}}),
    ("POST", "/api/posts/approve", {"post_ids": [10**20]}),
    ("POST", "/api/status-check", {"user_id": "a\x00b"}),
    ("POST", "/api/users", {"email": "x\x00@example.com", "role": "author"}),
]


def test_api_refuses_unstorable_text_and_huge_numbers(stack):
    for method, path, body in JSON_EDGES:
        response = stack.client.request(method, path, json=body)
        assert response.status_code == 400, (path, body, response.status_code, response.text)
        assert set(response.json()) >= {"error", "message"}
    raw = {"surrogate": b'{"title": "\\ud800"}', "nested": b"[" * 5000 + b"]" * 5000,
           "deep object": b'{"title": ' + b'{"a": ' * 100 + b"1" + b"}" * 101}
    for name, body in raw.items():
        response = stack.client.post("/api/books", content=body,
                                     headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"] in ("invalid_text", "bad_json", "invalid_request")
    for path in ("/api/books/100000000000000000000", "/api/tokens/99999999999999999999",
                 "/api/task-status/a%00b", "/api/tasks?q=%00", "/api/tasks?owner=a%00",
                 "/api/books?user_id=x%00"):
        response = stack.client.get(path) if "tokens" not in path else stack.client.delete(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.json()["error"], path


def test_pages_refuse_bad_input_with_the_error_page(stack):
    browser = _signed_in(stack, "manager@example.com")
    for method, path, data in (
            ("POST", "/login", {"email": "a\x00@example.com", "password": "x"}),
            ("POST", "/generate", {"book_id": "¹", "platforms": "twitter", "count_per_platform": "1"}),
            ("POST", "/generate", {"book_id": "9" * 30, "platforms": "twitter"}),
            ("POST", "/generate", {"book.title": "t\x00", "platforms": "twitter"}),
            ("POST", "/books", {"title": "t", "link": "javascript:alert(1)"}),
            ("GET", "/tasks/a%00b", None), ("GET", "/books/100000000000000000000", None),
            ("GET", "/?q=%00", None)):
        response = browser.request(method, path, data=data)
        assert 400 <= response.status_code < 500, (path, data, response.status_code)
        assert "text/html" in response.headers["content-type"], path
    anonymous = _browser(stack).post("/login", data={"email": "\x00", "password": "\x00"})
    assert anonymous.status_code == 400
    browser.close()


@pytest.mark.parametrize("link", ["javascript:alert(1)", "data:text/html,<script>x</script>",
                                  "vbscript:msgbox(1)", "JaVaScRiPt:alert(1)", "http://", "ftp://x.example"])
def test_links_are_web_addresses_only(stack, link):
    response = stack.client.post("/api/books", json={"title": "t", "link": link})
    assert response.status_code == 400 and "link" in response.json()["fields"]
    one_off = stack.client.post("/api/generate-posts", json={"platforms": ["twitter"],
                                                             "book": {"title": "t", "link": link}})
    assert one_off.status_code == 400
    assert stack.client.post("/api/books", json={"title": "t", "link": "https://example.com/b"}).status_code == 201


@pytest.mark.parametrize("last_id", ["x:²-1", "x:" + "1" * 5000 + "-0", "{epoch}:18446744073709551616-0",
                                     "{epoch}:18446744073709551615-18446744073709551615",
                                     "{epoch}:9999999999999999-0", "garbage", "{epoch}:-1"])
def test_malformed_last_event_id_gets_a_resync(stack, last_id):
    tracebacks = stack.web.log().count("Traceback")
    probe = stack.events()
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1)
    wait_until(lambda: probe.task_events(task_id), 10, "an event")
    epoch = probe.task_events(task_id)[0][0].split(":")[0]
    probe.close()
    reader = stack.events(last_event_id=last_id.replace("{epoch}", epoch).encode())  # UTF-8 on the wire
    wait_until(lambda: reader.events or reader.done.is_set(), 10, "the stream's first message")
    assert reader.status == 200 and reader.events[0][1] == "resync", reader.events[:1]
    stack.queue(platforms=["twitter"], count_per_platform=1)  # and the stream lives on
    wait_until(lambda: any(kind == "task" for _, kind, _ in reader.events), 10, "a live event")
    reader.close()
    assert stack.web.log().count("Traceback") == tracebacks


# -- 6. role views --

def test_authors_see_no_one_elses_work_nor_worker_internals(stack, people_here):
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL secret"})
    wait_until(lambda: task_id in stack.running(), 10, "the task to run")
    autonomous = stack.client.post("/api/autonomous/start")
    assert autonomous.status_code == 200
    workers = stack.client.get("/api/health").json()["task_queue_status"]["workers"]
    secrets = [task_id, "manager@example.com", *(w["id"] for w in workers),
               *(w["hostname"] for w in workers)]
    author = people_here
    for path in ("/api/health", "/api/tasks/stats", "/api/autonomous/status", "/api/workers", "/", "/tasks",
                 "/health", "/stats", "/workers"):
        body = author.get(path)
        assert body.status_code == 200, path
        leaked = [s for s in secrets if s in body.text.replace(author.email, "")]
        assert not leaked, (path, leaked)
    assert author.get("/metrics").status_code == 403
    assert stack.client.get("/metrics").status_code == 200
    # Asking for someone else's tasks is refused, not quietly answered with one's own.
    others = author.get("/api/tasks", params={"owner": "manager@example.com"})
    assert others.status_code == 403 and "leave owner out" in others.json()["message"]
    assert author.get("/api/tasks", params={"owner": author.email}).status_code == 200
    stack.client.post("/api/autonomous/stop")
    stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": True})


def test_authors_see_the_worker_of_their_own_tasks_by_an_alias(stack):
    """Their task's worker is named by an alias, the same everywhere (status, lists,
    timeline, task page, both streams, the health panel), never by its host and process."""
    email = _ensure_user(stack, f"alias.{stack.name}@example.com")
    browser = _signed_in(stack, email)
    token = browser.post("/api/tokens", json={"name": "alias"}).json()["token"]
    events = stack.events(token=token).wait_open()
    queued = browser.post("/api/generate-posts", json={
        "async": True, "platforms": ["twitter"], "count_per_platform": 1,
        "book": {"title": "STALL alias"}})
    assert queued.status_code == 202, queued.text
    task_id = queued.json()["task_id"]
    wait_until(lambda: task_id in stack.running(), 10, "the task to run")
    real = stack.task(task_id)["worker"]  # as the manager sees it
    worker = next(w for w in stack.client.get("/api/health").json()["task_queue_status"]["workers"]
                  if w["id"] == real)
    secrets = {real, f"{worker['hostname']}:", f":{worker['pid']}"}

    alias = browser.get(f"/api/task-status/{task_id}").json()["worker"]
    assert alias and alias.startswith("worker ") and alias != real
    listed = browser.get("/api/tasks").json()["tasks"]
    active = browser.get("/api/tasks/active").json()["active_tasks"]
    timeline = browser.get(f"/api/tasks/{task_id}/timeline").json()["timeline"]
    panel = browser.get("/api/health").json()["task_queue_status"]["workers"]
    assert next(t["worker"] for t in listed if t["task_id"] == task_id) == alias
    assert next(t["worker"] for t in active if t["task_id"] == task_id) == alias
    assert alias in [step["worker"] for step in timeline]
    assert alias in [w["id"] for w in panel]  # the same name in the health panel
    streamed = wait_until(lambda: [d["task"]["worker"] for _, _, d in events.events
                                   if (d.get("task") or {}).get("task_id") == task_id
                                   and d["task"]["worker"]], 10, "the run's event")
    assert set(streamed) == {alias}
    for path in (f"/api/task-status/{task_id}", "/api/tasks", "/api/tasks/active",
                 f"/api/tasks/{task_id}/timeline", f"/tasks/{task_id}", f"/generate?task={task_id}",
                 "/api/workers", "/workers"):
        body = browser.get(path)
        assert body.status_code == 200, path
        assert not [s for s in secrets if s in body.text], (path, body.text[:2000])
    assert alias in browser.get(f"/tasks/{task_id}").text

    # The task page's stream redraws the section when the task changes: the alias there too.
    with browser.stream("GET", f"/tasks/{task_id}/stream",
                        timeout=httpx.Timeout(10, read=20)) as section:
        revoked = stack.client_for(token).post(f"/api/tasks/revoke/{task_id}",
                                               json={"terminate": True})
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["task"]["worker"] == alias
        seen = ""
        for line in section.iter_lines():
            seen += line + "\n"
            if not line and "REVOKED" in seen:  # the end of the message that shows it
                break
    assert alias in seen and not [s for s in secrets if s in seen], seen[:3000]
    assert real in stack.client.get(f"/api/tasks/{task_id}/timeline").text  # managers: in full
    events.close()
    browser.close()


def test_an_older_error_text_naming_a_worker_shows_its_alias(stack, people_here):
    """Records written before a lost run's worker had a field of its own name it in their
    error text: their author reads the alias there too (status, board row, task page)."""
    from sqlalchemy import update

    from jobs.db import make_engine
    from jobs.models import tasks
    author = people_here
    queued = author.post("/api/status-check", headers={"Origin": stack.base_url})
    assert queued.status_code == 202, queued.text
    task_id = queued.json()["task_id"]
    stack.wait_status(task_id, "SUCCESS")
    old_id = "oldhost.example:4242:abcdef"
    url = stack.env.get("DATABASE_URL") or f"sqlite:///{stack.data_dir.resolve() / 'app.db'}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(update(tasks).where(tasks.c.id == task_id).values(
                status="FAILURE", error={"type": "lost", "message": f"worker {old_id} stopped "
                                         "responding while running it; no attempts left (3 of 3)"}))
    finally:
        engine.dispose()
    status = author.get(f"/api/task-status/{task_id}").json()
    alias = status["error"]["message"].split(" stopped")[0].removeprefix("worker ")
    assert alias.startswith("worker ") and old_id not in str(status), status
    for path in ("/tasks?status=FAILURE", f"/tasks/{task_id}"):
        page = author.get(path)
        assert page.status_code == 200 and task_id[:10] in page.text, path
        assert old_id not in page.text and alias in page.text, path
    assert old_id in stack.client.get(f"/api/task-status/{task_id}").text  # managers: as stored


def test_authors_see_no_one_elses_webhooks_pauses_runs_or_service_addresses(stack, people_here):
    author = people_here
    paused = stack.client.post("/api/queue/pause", json={"type": "weekly_report"})
    assert paused.status_code == 200, paused.text
    try:
        run = stack.client.post("/api/schedules/retention/run")
        assert run.status_code in (200, 202), run.text
        hook = "http://127.0.0.1:9/ops-hook?key=the-managers-own"
        queued = stack.client.post("/api/status-check", json={"user_id": author.email,
                                                              "callback_url": hook})
        assert queued.status_code == 202, queued.text
        task_id = queued.json()["task_id"]
        manager_health = stack.client.get("/api/health").json()

        health = author.get("/api/health")
        assert health.status_code in (200, 503)
        assert "weekly_report" in health.json()["task_queue_status"]["paused"]  # what waits...
        queue = author.get("/api/queue").json()["paused"]
        assert "weekly_report" in queue
        for body in (health.text, author.get("/api/queue").text):
            assert "manager@example.com" not in body  # ...not who paused it
        reason = manager_health["task_queue_status"]["reason"]
        assert reason and reason not in health.text  # how Redis or the database is reached
        assert "reason" not in author.get("/api/tasks/stats").json()

        listed = author.get("/api/schedules").json()["schedules"]
        ran = next(s for s in listed if s["name"] == "retention")["last_run"]
        assert ran and "task_id" not in ran, ran  # the service's run, by state only
        assert author.get("/schedules").status_code == 200
        assert next(s for s in stack.client.get("/api/schedules").json()["schedules"]
                    if s["name"] == "retention")["last_run"]["task_id"]

        # The manager's webhook on the author's task is the manager's.
        assert author.get(f"/api/tasks/{task_id}/deliveries").json()["webhook"] is None
        assert "the-managers-own" not in author.get(f"/tasks/{task_id}").text
        managers = stack.client.get(f"/api/tasks/{task_id}/deliveries").json()["webhook"]
        assert managers["url"] == hook and managers["requested_by"] == "manager@example.com"
    finally:
        stack.client.post("/api/queue/resume", json={"type": "weekly_report"})


@pytest.fixture
def people_here(stack):
    email = _ensure_user(stack, f"sec-watcher.{stack.name}@example.com")
    browser = _signed_in(stack, email)
    browser.email = email
    yield browser
    browser.close()


def test_metrics_token(fresh_stack):
    stack = fresh_stack("embedded", METRICS_TOKEN="scrape-me-please").start()
    scraper = _browser(stack)
    assert scraper.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"}).status_code == 200
    assert scraper.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert scraper.get("/metrics").status_code == 401
    # The metrics token opens /metrics only.
    assert scraper.get("/api/health", headers={"Authorization": "Bearer scrape-me-please"}).status_code == 401


# -- 7. behind a TLS proxy --

def test_behind_a_trusted_proxy_cookies_are_secure_and_https_is_pinned(fresh_stack):
    stack = fresh_stack("embedded", TRUSTED_PROXIES="1").start()
    client = _browser(stack)
    over_tls = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    login = client.post("/login", data={"email": "manager@example.com", "password": PASSWORD},
                        headers=over_tls)
    assert "secure" in login.headers["set-cookie"].lower()
    assert login.headers["strict-transport-security"].startswith("max-age=")
    cookie = login.headers["set-cookie"].split(";")[0]  # httpx keeps Secure cookies for https
    sessions = client.get("/api/me/sessions", headers={**over_tls, "Cookie": cookie}).json()["sessions"]
    assert sessions[0]["address"] == "203.0.113.5"
    plain = client.post("/login", data={"email": "manager@example.com", "password": PASSWORD})
    assert "secure" not in plain.headers["set-cookie"].lower()
    assert "strict-transport-security" not in plain.headers
    # A plain status check is answered below Quart (webapp/direct_enqueue.py): it too sees
    # the scheme the proxy was asked with.
    bearer = {"Authorization": f"Bearer {stack.token}"}
    queued = client.post("/api/status-check", headers={**over_tls, **bearer})
    assert queued.status_code == 202 and queued.headers["strict-transport-security"].startswith("max-age=")
    queued = client.post("/api/status-check", headers=bearer)
    assert queued.status_code == 202 and "strict-transport-security" not in queued.headers
    client.close()


def test_forwarded_headers_are_not_believed_without_trusted_proxies(stack):
    response = _browser(stack).post("/login", data={"email": "manager@example.com", "password": PASSWORD},
                                    headers={"X-Forwarded-Proto": "https"})
    assert "secure" not in response.headers["set-cookie"].lower()
    assert "strict-transport-security" not in response.headers


# -- 8. login CSRF, setup, no-store, passwords and emails --

def test_cross_site_sign_in_is_refused(stack):
    response = _browser(stack).post(
        "/login", data={"email": "manager@example.com", "password": PASSWORD},
        headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
    assert response.status_code == 403 and "set-cookie" not in response.headers
    other_origin = _browser(stack).post(
        "/login", data={"email": "manager@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example"})
    assert other_origin.status_code == 403


@pytest.mark.parametrize("kind", ["embedded", "postgres"])
def test_setup_makes_exactly_one_first_manager(fresh_stack, kind):
    stack = fresh_stack(kind)
    stack.start_web()

    def attempt(n: int) -> int:
        with _browser(stack) as client:
            return client.post("/setup", data={"email": f"first{n}@example.com",
                                               "password": PASSWORD}).headers.get("location")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        places = list(pool.map(attempt, range(8)))
    assert places.count("/") == 1 and places.count("/login") == 7, places
    winner = places.index("/")
    manager = _signed_in(stack, f"first{winner}@example.com")
    assert [u["email"] for u in manager.get("/api/users").json()["users"]] == [f"first{winner}@example.com"]
    manager.close()


def test_pages_with_secrets_are_not_stored(stack):
    browser = _signed_in(stack, "manager@example.com")
    created = browser.post("/account/tokens", data={"name": "shown once"})
    assert "not shown again" in created.text and created.headers["cache-control"] == "no-store"
    assert browser.get("/account").headers["cache-control"] == "no-store"
    assert stack.client.post("/api/tokens", json={}).headers["cache-control"] == "no-store"
    assert "no-store" not in stack.client.get("/static/app.css").headers.get("cache-control", "")
    browser.close()


@pytest.mark.parametrize("password", ["eleven char", " " * 20, "\t\n " * 5])
def test_weak_passwords_are_refused(stack, password):
    response = stack.client.post("/api/users", json={"email": f"sec-weak.{stack.name}@example.com",
                                                     "role": "author", "password": password})
    assert response.status_code == 400


@pytest.mark.parametrize("email", ["a@b", "@example.com", "a@", "a b@example.com", "a@@example.com",
                                   "a@example..com", "x" * 250 + "@example.com"])
def test_emails_are_validated(stack, email):
    response = stack.client.post("/api/users", json={"email": email, "role": "author"})
    assert response.status_code == 400, email


# -- 10. the OpenAPI document --

def test_openapi_document_is_valid_and_documents_every_answer(stack):
    from openapi_spec_validator import validate
    document = httpx.get(stack.base_url + "/openapi.json").json()
    validate(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert any(code.startswith("2") for code in responses), (method, path)
            assert responses["4XX"]["content"]["application/json"]["schema"] == \
                {"$ref": "#/components/schemas/Error"}, (method, path)
    assert document["paths"]["/login"]["post"]["security"] == []
