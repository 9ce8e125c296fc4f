"""Every time a person reads is a local time: no page or fragment a manager or an author can
open shows an ISO-8601 moment (`2026-12-02T10:00:00Z`, `str(datetime)`) as text. Moments
live only in `<time datetime=...>` attributes, formatted for reading by the one local-time
formatter (webapp/local_time.py on the server, app.js in the browser).

The pages are opened with data on them (tasks of several types, posts in every state, a
campaign's plan, tokens, audit entries, users, schedules), read twice: as the server sends
them (every text node, closed <details> included, and the attributes people read: titles,
labels, confirmation questions) and, one page per route, in Chromium with scripts on (the
body's visible text, every <details> opened)."""
from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import httpx
import pytest

from tests.test_auth import _routes

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)

ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
PASSWORD = "a long password"
READ_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt", "data-confirm", "hx-confirm"}
# GET routes that are not pages: streams (their fragments are the pages' own partials,
# rendered by the same templates), files, feeds and machine answers.
NOT_PAGES = {"/board/stream", "/health/stream", "/tasks/<task_id>/stream", "/calendar/<token>.ics",
             "/healthz", "/metrics", "/openapi.json", "/static/<path:filename>",
             "/login", "/setup"}  # signed out: nothing recorded to show


class ReadText(HTMLParser):
    """The text a person may read in a page: text nodes and the attributes read aloud or
    shown (a <time>'s `datetime` is for machines and is left out on purpose)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._skip += 1
        self.parts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _raw_times(html: str) -> list[str]:
    reader = ReadText()
    reader.feed(html)
    return [part.strip()[:160] for part in reader.parts if ISO_MOMENT.search(part)]


def _session(stack, email: str, tz: str) -> httpx.Client:
    client = httpx.Client(base_url=stack.base_url, timeout=15, cookies={"tz": tz})
    signed = client.post("/login", data={"email": email, "password": PASSWORD})
    assert signed.status_code in (302, 303), signed.text
    return client


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _scene(stack) -> dict:
    """An author's book, posts in every state, a campaign's plan, tasks of several types,
    a token in use; a manager who moved one of her posts (audited) and changed a user."""
    email = f"times.{stack.name}@example.com"
    token = stack.create_user(email, "author", password=PASSWORD)
    me = stack.client_for(token)  # the token is used: its "last used" shows
    launch = dt.date.today() + dt.timedelta(days=40)
    book = me.post("/api/books", json={"title": "Clockwork Tides", "link": "https://ex.com/c",
                                       "genre": "mystery", "launch_date": launch.isoformat()}).json()
    made = me.post("/api/generate-posts", json={"platforms": ["twitter", "bluesky"],
                                                "count_per_platform": 2, "book_id": book["id"]})
    assert made.status_code == 200, made.text
    generation = me.post("/api/generate-posts", json={"platforms": ["twitter"], "async": True,
                                                      "book_id": book["id"]}).json()["task_id"]
    campaign = me.post(f"/api/books/{book['id']}/campaign", json={"platforms": ["twitter"]})
    assert campaign.status_code == 202, campaign.text
    campaign = campaign.json()["task_id"]
    check = me.post("/api/status-check").json()["task_id"]
    for task_id in (generation, campaign, check):
        stack.wait_status(task_id, "SUCCESS", timeout=60)

    posts = me.get("/api/posts", params={"book_id": book["id"], "per_page": 200}).json()["posts"]
    undated = [p for p in posts if not p["scheduled_at"]]
    approval = me.post("/api/posts/approve", json={"post_ids": [p["id"] for p in undated[:3]]})
    stack.wait_status(approval.json()["task_id"], "SUCCESS")
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    scheduled = me.post("/api/posts/schedule", json={"post_ids": [p["id"] for p in undated[:2]],
                                                     "start": _iso(soon), "every_hours": 5})
    assert len(scheduled.json()["scheduled"]) == 2, scheduled.text
    assert me.patch(f"/api/posts/{undated[3]['id']}", json={"status": "rejected"}).status_code == 200
    published = undated[0]["id"]
    assert me.patch(f"/api/posts/{published}", json={"status": "published"}).status_code == 200
    # The manager moves one of her posts: the audit entry quotes both times.
    moved = stack.client.patch(f"/api/posts/{undated[1]['id']}",
                               json={"scheduled_at": _iso(soon + dt.timedelta(hours=30))})
    assert moved.status_code == 200, moved.text

    manager, other = (f"times.{name}.{stack.name}@example.com" for name in ("chief", "other"))
    for address, role in ((manager, "manager"), (other, "viewer")):
        made = stack.client.post("/api/users", json={"email": address, "role": role,
                                                     "password": PASSWORD})
        assert made.status_code == 201, made.text
    other_id = made.json()["id"]
    for change in ({"disabled": True}, {"disabled": False}, {"role": "author"}):
        assert stack.client.patch(f"/api/users/{other_id}", json=change).status_code == 200
    daily = stack.client.post("/api/autonomous/execute-daily").json()["task_id"]
    stack.wait_status(daily, {"SUCCESS", "FAILURE"}, timeout=60)
    return {"author": email, "manager": manager, "book": book["id"], "launch": launch,
            "soon": soon, "tasks": [generation, campaign, check, approval.json()["task_id"]],
            "daily": daily}


def _pages(scene: dict, role: str) -> dict[str, list[str]]:
    """The URLs to read, by the route each one stands for."""
    soon, launch = scene["soon"].date().isoformat(), scene["launch"].isoformat()
    pages = {
        "/": ["/"],
        "/tasks": ["/tasks", "/tasks?status=SUCCESS"],
        "/tasks/<task_id>": [f"/tasks/{t}" for t in scene["tasks"]],
        "/generate": ["/generate"],
        "/health": ["/health"],
        "/stats": ["/stats", "/stats?window=24h"],
        "/posts": ["/posts?status="] + [f"/posts?status={s}" for s in
                                        ("draft", "approved", "scheduled", "published", "rejected")],
        "/calendar": [f"/calendar?date={soon}", f"/calendar?view=week&date={soon}",
                      f"/calendar?date={launch}"],
        "/books": ["/books"],
        "/books/<int:book_id>": [f"/books/{scene['book']}"],
        "/account": ["/account"],
        "/schedules": ["/schedules"],
        "/workers": ["/workers"],
        "/workers/table": ["/workers/table"],
    }
    if role == "manager":
        pages |= {"/audit": ["/audit"], "/users": ["/users"]}
        pages["/tasks/<task_id>"].append(f"/tasks/{scene['daily']}")
        pages["/calendar"].append(f"/calendar?date={soon}&owner={scene['author']}")
    return pages


def test_no_page_shows_a_raw_time(stack, browser):
    scene = _scene(stack)
    served = {rule for method, rule in _routes() if method == "GET" and not rule.startswith("/api/")}
    manager_pages = _pages(scene, "manager")
    assert served - NOT_PAGES == set(manager_pages), "a page route is not read by this test"

    found = []
    for role, email, tz in (("manager", scene["manager"], "America/New_York"),
                            ("author", scene["author"], "Asia/Kolkata")):
        client = _session(stack, email, tz)
        page = browser.page(stack, email=email, password=PASSWORD)
        for urls in _pages(scene, role).values():
            for n, url in enumerate(urls):
                answer = client.get(url)
                if answer.status_code == 403 and role == "author":
                    continue  # a manager's page: the author never sees it
                assert answer.status_code == 200, (role, url, answer.status_code)
                found += [(role, url, "server", text) for text in _raw_times(answer.text)]
                if n:  # in the browser, one page per route: the others are the same templates
                    continue
                page.goto(stack.base_url + url)
                page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
                text = page.inner_text("body")
                found += [(role, url, "browser", m) for m in ISO_MOMENT.findall(text)]
        client.close()
    assert not found, found

    # What replaced them: the same moments, formatted in the reader's zone.
    author = _session(stack, scene["author"], "Asia/Kolkata")
    local = scene["soon"].astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    # The week of the post's day where the author is: after 18:30 UTC it is the next day in
    # India, and on a Sunday (UTC) the next week.
    week = author.get("/calendar", params={"view": "week", "date": local.date().isoformat()})
    assert f'datetime="{_iso(scene["soon"])}"' in week.text
    assert local.strftime("%H:%M") in week.text
    check = author.get(f"/tasks/{scene['tasks'][2]}")  # its result says when it counted
    assert re.search(r'"checked_at": "<time datetime="[^"]+" data-local="datetime">[^<]+IST</time>',
                     check.text.replace("&#34;", '"')), check.text
    author.close()
    chief = _session(stack, scene["manager"], "UTC")
    moved = next(row for row in chief.get("/audit").text.split("<tr>") if "post.edit" in row)
    assert moved.count("<time datetime=") == 3  # when, and the move's from and to
    chief.close()
