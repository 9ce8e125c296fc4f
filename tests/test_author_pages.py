"""The author's pages as plain HTML forms: home, posts to review, scheduling, the calendar
(the browser suite drives the same path in Chromium)."""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import httpx
import pytest

PASSWORD = "a long password"


def _signed_in(stack, email: str, role: str = "author", tz: str = "Europe/Paris") -> httpx.Client:
    stack.create_user(email, role, password=PASSWORD)
    client = httpx.Client(base_url=stack.base_url, timeout=10, cookies={"tz": tz})
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code in (302, 303)
    return client


def _with_posts(stack, name: str):
    email = f"{name}.{stack.name}@example.com"
    me = _signed_in(stack, email)
    added = me.post("/books", data={"title": f"{name.title()} Tides", "tone": "warm",
                                    "link": "https://ex.com/t", "launch_date": "2030-05-01"})
    book_id = int(re.search(r"/books/(\d+)", added.headers["location"]).group(1))
    made = me.post("/generate", data={"book_id": str(book_id), "platforms": ["twitter", "bluesky"],
                                      "count_per_platform": "1"})
    assert made.status_code == 303, made.text
    posts = stack.client.get("/api/posts", params={"owner": email}).json()["posts"]
    return email, me, book_id, posts


def test_author_home_is_their_books_and_the_board_is_the_managers(stack):
    email, me, book_id, posts = _with_posts(stack, "homely")
    home = me.get("/")
    assert home.status_code == 200 and "Your books" in home.text
    assert f'href="/generate?book_id={book_id}"' in home.text and "Write more" in home.text
    assert "2 drafts waiting for approval" in home.text
    assert all(f"platform-{p['platform']}" in home.text for p in posts)
    assert 'id="rows-active"' not in home.text  # no running work: no live table
    assert "Queue backend" not in home.text and 'href="/health"' not in home.text
    assert 'id="rows-active"' in me.get("/tasks").text  # her tasks, reached from home
    assert 'id="rows-active"' in stack.client.get("/").text  # the manager's home


def test_review_edit_approve_schedule_and_see_it_on_the_calendar(stack):
    email, me, book_id, posts = _with_posts(stack, "reviewer")
    tweet = next(p for p in posts if p["platform"] == "twitter")
    drafts = me.get("/posts", params={"status": "draft"})
    assert f'id="post-{tweet["id"]}"' in drafts.text

    too_long = me.post(f"/posts/{tweet['id']}", data={"text": "long " * 100},
                       headers={"Referer": f"{stack.base_url}/posts"})
    assert too_long.status_code == 400 and "at most 280" in too_long.text
    assert 'href="/posts"' in too_long.text  # the way back
    saved = me.post(f"/posts/{tweet['id']}", data={"text": "Short and sweet https://ex.com/t"})
    assert saved.status_code == 303
    for post in posts:
        assert me.post(f"/posts/{post['id']}", data={"status": "approved"}).status_code == 303

    paris = ZoneInfo("Europe/Paris")
    start = (dt.datetime.now(paris) + dt.timedelta(days=3)).replace(hour=9, minute=30, second=0,
                                                                    microsecond=0)
    answer = me.post("/posts/schedule", data={"post_ids": [str(p["id"]) for p in posts],
                                              "start": start.strftime("%Y-%m-%dT%H:%M"),
                                              "every_hours": "24"})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/calendar?")
    after = stack.client.get(f"/api/posts/{tweet['id']}")
    scheduled = after.json()
    assert scheduled["status"] == "scheduled" and scheduled["text"].startswith("Short and sweet")
    assert dt.datetime.fromisoformat(scheduled["scheduled_at"]) == start  # 09:30 in Paris

    for view in ("month", "week"):
        page = me.get("/calendar", params={"view": view, "date": start.date().isoformat()})
        assert page.status_code == 200
        day = page.text.split(f'id="day-{start.date().isoformat()}"')[1].split("</section>")[0]
        assert f'id="entry-{tweet["id"]}"' in day and "09:30" in day
        assert "Europe/Paris" in page.text

    # Moving it is editing its time; publishing asks first.
    later = start + dt.timedelta(days=1, hours=2)
    assert me.post(f"/posts/{tweet['id']}", data={"scheduled_at": later.strftime("%Y-%m-%dT%H:%M")}).status_code == 303
    assert dt.datetime.fromisoformat(stack.client.get(f"/api/posts/{tweet['id']}").json()["scheduled_at"]) == later
    asked = me.post(f"/posts/{tweet['id']}", data={"status": "published"})
    assert asked.status_code == 200 and "Yes, it is published" in asked.text
    assert stack.client.get(f"/api/posts/{tweet['id']}").json()["status"] == "scheduled"
    done = me.post(f"/posts/{tweet['id']}", data={"status": "published", "confirmed": "yes",
                                                  "back": "/calendar"})
    assert done.status_code == 303 and done.headers["location"] == "/calendar"
    assert stack.client.get(f"/api/posts/{tweet['id']}").json()["status"] == "published"


def test_viewers_read_without_forms_and_times_are_local(stack):
    _with_posts(stack, "shown")
    viewer = _signed_in(stack, f"eyes.{stack.name}@example.com", role="viewer")
    posts = viewer.get("/posts", params={"status": ""})
    assert posts.status_code == 200 and 'class="post post-card' in posts.text
    assert "<textarea" not in posts.text and 'action="/posts/' not in posts.text
    generate = viewer.get("/generate")
    assert 'class="generate"' not in generate.text and "Viewers can watch" in generate.text
    assert 'href="/generate"' not in generate.text and 'href="/audit"' not in generate.text
    account = viewer.get("/account")
    assert re.search(r"<td>\d{4}-\d\d-\d\dT", account.text) is None  # no raw ISO times
    manager = _signed_in(stack, f"chief.{stack.name}@example.com", role="manager")
    audit = manager.get("/audit")
    assert 'data-local="datetime"' in audit.text and re.search(r">\d{4}-\d\d-\d\dT", audit.text) is None


def test_authors_see_the_last_daily_operations_without_its_id(stack):
    queued = stack.client.post("/api/autonomous/execute-daily")
    assert queued.status_code in (200, 202), queued.text
    task_id = queued.json()["task_id"]
    stack.wait_status(task_id, "SUCCESS")
    me = _signed_in(stack, f"daily.reader.{stack.name}@example.com")
    for path in ("/health", "/tasks"):
        page = me.get(path)
        assert page.status_code == 200, (path, page.text[-2000:])
        if "Last daily operations" in page.text:
            assert task_id not in page.text and "SUCCESS" in page.text


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)  # the same in every mode
def test_a_confirmed_change_goes_back_only_to_a_page_of_ours(stack):
    _, me, _, posts = _with_posts(stack, "backwards")
    post = posts[0]
    approved = me.post(f"/posts/{post['id']}", data={"status": "approved"},
                       headers={"Referer": f"{stack.base_url}/posts?status=draft"})
    assert approved.status_code == 303
    assert approved.headers["location"] == "/posts?status=draft&done=approved"
    assert "Post approved" in me.get(approved.headers["location"]).text  # said, not only done
    for back in ("//evil.example.com/", "/\\evil.example.com", "https://evil.example.com/"):
        done = me.post(f"/posts/{post['id']}", data={"text": "Still mine https://ex.com/t",
                                                      "confirmed": "yes", "back": back})
        assert done.status_code == 303 and done.headers["location"] == "/posts?done=text", back
    done = me.post(f"/posts/{post['id']}", data={"status": "published", "confirmed": "yes",
                                                  "back": "/calendar?view=week"})
    assert done.headers["location"] == "/calendar?view=week"
