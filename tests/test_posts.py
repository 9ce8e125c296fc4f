"""The life of a post over JSON: list, edit, approve, schedule, the calendar, exports, feed."""
from __future__ import annotations

import csv
import datetime as dt
import io

import icalendar
import pytest



def _author(stack, name: str):
    email = f"{name}.{stack.name}@example.com"
    client = stack.client_for(stack.create_user(email, "author"))
    book = client.post("/api/books", json={"title": f"Book of {name}", "link": "https://ex.com/b",
                                           "blurb": "A keeper finds a letter.", "genre": "mystery"})
    assert book.status_code == 201, book.text
    made = client.post("/api/generate-posts", json={"platforms": ["twitter", "bluesky"],
                                                    "count_per_platform": 2})
    assert made.status_code == 200, made.text
    return email, client, book.json()


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def test_posts_are_drafts_that_authors_edit_approve_and_schedule(stack):
    email, me, book = _author(stack, "lifecycle")
    listed = me.get("/api/posts", params={"book_id": book["id"]}).json()
    assert listed["total"] == 4 and {p["status"] for p in listed["posts"]} == {"draft"}
    assert {p["owner"] for p in listed["posts"]} == {email}
    tweet = next(p for p in listed["posts"] if p["platform"] == "twitter")
    assert me.get("/api/posts", params={"platform": "bluesky"}).json()["total"] == 2

    too_long = me.patch(f"/api/posts/{tweet['id']}", json={"text": "word " * 80})
    assert too_long.status_code == 400
    assert too_long.json() | {"message": ""} == {"error": "too_long", "message": "",
                                                  "length": 399, "limit": 280}
    # X counts a link as 23 characters whatever its length: 250 + 1 + 23 fits.
    edited = me.patch(f"/api/posts/{tweet['id']}",
                      json={"text": "x" * 250 + " https://example.com/" + "a" * 100})
    assert edited.status_code == 200 and edited.json()["length"] == 274

    year = dt.date.today().year + 2
    early = me.patch(f"/api/posts/{tweet['id']}", json={"status": "scheduled",
                                                        "scheduled_at": f"{year}-01-01T09:00:00Z"})
    assert early.status_code == 409 and early.json()["error"] == "invalid_transition"
    assert me.patch(f"/api/posts/{tweet['id']}", json={"status": "approved"}).json()["status"] == "approved"
    past = me.patch(f"/api/posts/{tweet['id']}", json={"scheduled_at": "2001-01-01T09:00:00Z"})
    assert past.status_code == 400 and past.json()["error"] == "in_the_past"
    naive = me.patch(f"/api/posts/{tweet['id']}", json={"scheduled_at": f"{year}-01-01T09:00:00"})
    assert naive.status_code == 400
    moved = me.patch(f"/api/posts/{tweet['id']}", json={"scheduled_at": f"{year}-01-01T09:00:00+02:00"})
    assert moved.json()["status"] == "scheduled"
    assert moved.json()["scheduled_at"] == f"{year}-01-01T07:00:00Z"
    published = me.patch(f"/api/posts/{tweet['id']}", json={"status": "published"}).json()
    assert published["status"] == "published" and published["published_at"]
    frozen = me.patch(f"/api/posts/{tweet['id']}", json={"text": "changed"})
    assert frozen.status_code == 409 and frozen.json()["error"] == "already_published"

    bad = [me.patch(f"/api/posts/{tweet['id']}", json=body)
           for body in ({"status": "lost"}, {"colour": "red"}, {}, {"text": None})]
    assert [r.status_code for r in bad] == [400, 400, 400, 400]
    assert all(set(r.json()) >= {"error", "message"} for r in bad)
    assert me.patch("/api/posts/999999", json={"status": "approved"}).status_code == 404


def test_approval_task_moves_drafts_only_and_others_are_private(stack):
    email, me, book = _author(stack, "approver")
    ids = [p["id"] for p in me.get("/api/posts", params={"book_id": book["id"]}).json()["posts"]]
    task = me.post("/api/posts/approve", json={"post_ids": ids[:2] + [999999]})
    assert task.status_code == 202
    result = stack.wait_status(task.json()["task_id"], "SUCCESS")["result"]
    assert sorted(result["approved"]) == sorted(ids[:2]) and result["not_found"] == [999999]
    approved = me.get("/api/posts", params={"status": "approved", "book_id": book["id"]}).json()
    assert sorted(p["id"] for p in approved["posts"]) == sorted(ids[:2])

    _, other, _ = _author(stack, "nosy")
    assert other.get(f"/api/posts/{ids[0]}").status_code == 404
    assert other.patch(f"/api/posts/{ids[0]}", json={"status": "rejected"}).status_code == 404
    assert other.get("/api/posts", params={"owner": email}).status_code == 403
    assert ids[0] not in [p["id"] for p in other.get("/api/posts").json()["posts"]]

    # A manager sees everyone's and may edit them; that is audited.
    assert stack.client.get("/api/posts", params={"owner": email}).json()["total"] == 4
    assert stack.client.patch(f"/api/posts/{ids[2]}", json={"status": "rejected"}).status_code == 200
    entries = stack.client.get("/api/audit").json()["entries"]
    assert any(e["action"] == "post.edit" and e["target"] == f"post:{ids[2]}" for e in entries)
    viewer = stack.client_for(stack.create_user(f"watcher.{stack.name}@example.com", "viewer"))
    assert viewer.get("/api/posts", params={"owner": email}).json()["total"] == 4
    assert viewer.patch(f"/api/posts/{ids[3]}", json={"status": "approved"}).status_code == 403


def test_schedule_spreads_posts_and_feeds_calendar_exports_and_ical(stack):
    email, me, book = _author(stack, "planner")
    posts = me.get("/api/posts", params={"book_id": book["id"]}).json()["posts"]
    ids = [p["id"] for p in posts]
    for post_id in ids[:3]:
        assert me.patch(f"/api/posts/{post_id}", json={"status": "approved"}).status_code == 200
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    in_past = me.post("/api/posts/schedule", json={"post_ids": ids, "start": "2001-01-01T00:00:00Z"})
    assert in_past.status_code == 400 and in_past.json()["error"] == "in_the_past"
    answer = me.post("/api/posts/schedule", json={"post_ids": ids, "start": _iso(start),
                                                  "every_hours": 6})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["scheduled"]) == 3 and [s["id"] for s in body["not_scheduled"]] == [ids[3]]
    slots = [(p["platform"], p["scheduled_at"]) for p in body["scheduled"]]
    assert len(set(slots)) == 3  # one platform never twice in one slot
    times = sorted({dt.datetime.fromisoformat(t) for _, t in slots})
    assert times[0] == start and all((t - start) % dt.timedelta(hours=6) == dt.timedelta() for t in times)

    cal = me.get("/api/calendar", params={"from": _iso(start - dt.timedelta(days=1)),
                                          "to": _iso(start + dt.timedelta(days=7))}).json()
    assert sorted(p["id"] for p in cal["posts"]) == sorted(ids[:3])
    assert me.get("/api/calendar", params={"from": _iso(start), "to": _iso(start)}).status_code == 400
    assert me.get("/api/calendar", params={"from": "soon"}).status_code == 400

    exported = me.get("/api/posts/export", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["platform", "scheduled_at", "text", "link", "book"]
    assert len(rows) == 4 and rows[1][1].endswith("Z") and rows[1][3] == "https://ex.com/b"
    assert rows[1][4] == book["title"]
    assert me.get("/api/posts/export", params={"format": "hootsuite"}).status_code == 400
    hoot = me.get("/api/posts/export", params={"format": "hootsuite", "platform": "twitter"})
    lines = list(csv.reader(io.StringIO(hoot.text)))
    assert lines and all(len(line) == 3 for line in lines)
    assert dt.datetime.strptime(lines[0][0], "%m/%d/%Y %H:%M")
    assert {line[1] for line in lines} <= {p["text"] for p in posts}

    url = me.get("/api/me").json()["calendar_url"]
    feed = stack.client_for(None).get(url)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    parsed = icalendar.Calendar.from_ical(feed.content)
    events = parsed.walk("VEVENT")
    assert len(events) == 3 and {str(e["uid"]) for e in events} == {f"post-{i}@book-marketing-agent" for i in ids[:3]}
    assert all(e.decoded("dtstart").tzinfo is not None for e in events)
    assert b"\r\n" in feed.content and parsed["version"] == "2.0"
    rotated = me.post("/api/me/calendar-url").json()["calendar_url"]
    assert rotated != url
    assert stack.client_for(None).get(url).status_code == 404
    assert stack.client_for(None).get(rotated).status_code == 200


def test_launch_campaign_plans_dated_drafts_around_the_launch(stack):
    email, me, _ = _author(stack, "launcher")
    launch = (dt.datetime.now(dt.UTC) + dt.timedelta(days=60)).date()
    book = me.post("/api/books", json={"title": "Glass Harbour", "genre": "mystery",
                                       "link": "https://ex.com/g",
                                       "launch_date": launch.isoformat()}).json()
    queued = me.post(f"/api/books/{book['id']}/campaign", json={"platforms": ["twitter", "bluesky"]})
    assert queued.status_code == 202, queued.text
    task = stack.wait_status(queued.json()["task_id"], "SUCCESS", timeout=60)
    assert task["type"] == "launch_campaign" and task["progress"] == {"done": 18, "total": 18}
    planned = me.get("/api/calendar", params={"from": _iso(dt.datetime.now(dt.UTC)),
                                              "to": _iso(dt.datetime.now(dt.UTC) + dt.timedelta(days=95))})
    mine = [p for p in planned.json()["posts"] if p["book_id"] == book["id"]]
    assert len(mine) == 18 and {p["status"] for p in mine} == {"draft"}
    launch_day = [p for p in mine if p["label"] == "Launch day"]
    assert {p["scheduled_at"] for p in launch_day} == {f"{launch.isoformat()}T10:00:00Z"}
    assert [p["label"] for p in mine][:2] == ["Cover reveal", "Cover reveal"]
    assert all(p["length"] <= p["limit"] for p in mine)
    # A planned draft, once approved, is scheduled at its planned time.
    first = mine[0]
    assert me.patch(f"/api/posts/{first['id']}", json={"status": "approved"}).status_code == 200
    scheduled = me.patch(f"/api/posts/{first['id']}", json={"status": "scheduled"}).json()
    assert scheduled["status"] == "scheduled" and scheduled["scheduled_at"] == first["scheduled_at"]

    no_date = me.post("/api/books", json={"title": "Undated"}).json()
    refused = me.post(f"/api/books/{no_date['id']}/campaign", json={"platforms": ["twitter"]})
    assert refused.status_code == 400 and refused.json()["error"] == "no_launch_date"
    passed = me.post(f"/api/books/{no_date['id']}/campaign",
                     json={"platforms": ["twitter"],
                           "launch_date": (launch - dt.timedelta(days=200)).isoformat()})
    assert passed.status_code == 400 and passed.json()["error"] == "launch_passed"
    _, other, _ = _author(stack, "interloper")
    assert other.post(f"/api/books/{book['id']}/campaign",
                      json={"platforms": ["twitter"]}).status_code == 404
    assert me.post(f"/api/books/{book['id']}/campaign", json={"platforms": []}).status_code == 400


def test_out_of_range_input_is_a_4xx(stack):
    _, me, book = _author(stack, "edges")
    huge = 10**30
    for response in (me.get(f"/api/posts/{huge}"),
                     me.patch(f"/api/posts/{huge}", json={"status": "approved"}),
                     me.get("/api/posts", params={"book_id": huge}),
                     me.post(f"/api/books/{huge}/campaign", json={"platforms": ["twitter"]})):
        assert 400 <= response.status_code < 500 and response.json()["error"]
    far = me.post("/api/posts/schedule", json={"post_ids": [huge, -1], "start": "9999-12-31T00:00:00Z"})
    assert far.status_code == 400 and far.json()["error"] == "too_far_ahead"
    soon = _iso(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    skipped = me.post("/api/posts/schedule", json={"post_ids": [huge, -1], "start": soon}).json()
    assert skipped == {"scheduled": [], "not_scheduled": [{"id": huge, "reason": "not_found"},
                                                          {"id": -1, "reason": "not_found"}]}
    post_id = me.get("/api/posts", params={"book_id": book["id"]}).json()["posts"][0]["id"]
    me.patch(f"/api/posts/{post_id}", json={"status": "approved"})
    assert me.patch(f"/api/posts/{post_id}", json={"scheduled_at": "9999-12-31T23:59:00Z"}).status_code == 400
    assert me.get("/api/calendar", params={"from": "9999-12-01T00:00:00Z",
                                           "to": "9999-12-31T00:00:00Z"}).status_code == 200
    long_campaign = me.post(f"/api/books/{book['id']}/campaign",
                            json={"platforms": ["twitter"], "launch_date": "9999-12-31"})
    assert long_campaign.status_code == 400


def _planned(stack, me, name: str) -> tuple[dict, str, list[dict]]:
    """A book launching in six weeks and its campaign's plan: (book, the task, its drafts)."""
    launch = (dt.datetime.now(dt.UTC) + dt.timedelta(days=42)).date()
    book = me.post("/api/books", json={"title": f"{name} Harbour", "genre": "mystery",
                                       "link": "https://ex.com/p", "launch_date": launch.isoformat()}).json()
    queued = me.post(f"/api/books/{book['id']}/campaign", json={"platforms": ["twitter"]})
    assert queued.status_code == 202, queued.text
    task_id = queued.json()["task_id"]
    stack.wait_status(task_id, "SUCCESS", timeout=60)
    plan = me.get("/api/posts", params={"book_id": book["id"], "status": "draft"}).json()["posts"]
    assert plan and all(p["scheduled_at"] for p in plan)
    return book, task_id, plan


# Mode-independent (the approval task is the seed's, run by every mode above): embedded only.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_a_campaign_plan_is_approved_in_one_request(stack):
    email, me, first_book = _author(stack, "plan.approver")
    book, task_id, plan = _planned(stack, me, "Bulk")
    me.patch(f"/api/posts/{plan[0]['id']}", json={"status": "rejected"})  # turned down on purpose

    queued = me.post("/api/posts/approve", json={"task_id": task_id})
    assert queued.status_code == 202 and queued.json()["status"] == "post_approval_queued"
    approval = stack.wait_status(queued.json()["task_id"], "SUCCESS")
    assert approval["type"] == "post_approval"
    assert approval["result"]["approved"] == sorted(p["id"] for p in plan[1:])
    states = {p["id"]: p["status"] for p in me.get("/api/posts", params={"book_id": book["id"]}).json()["posts"]}
    assert states == {plan[0]["id"]: "rejected", **{p["id"]: "approved" for p in plan[1:]}}
    # Only that plan: the book's other drafts wait as they were, and their times are kept.
    others = me.get("/api/posts", params={"book_id": first_book["id"]}).json()["posts"]
    assert {p["status"] for p in others} == {"draft"}
    kept = me.get(f"/api/posts/{plan[1]['id']}").json()
    assert kept["scheduled_at"] == plan[1]["scheduled_at"]
    again = stack.wait_status(me.post("/api/posts/approve", json={"task_id": task_id}).json()["task_id"],
                              "SUCCESS")
    assert again["result"]["approved"] == []  # nothing left to approve

    # The seed's shape is unchanged; one selector or the other, never both or none.
    for body in ({}, {"post_ids": [plan[0]["id"]], "task_id": task_id}, {"task_id": ""},
                 {"post_ids": []}):
        refused = me.post("/api/posts/approve", json=body)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_request", body
    check = me.post("/api/status-check").json()["task_id"]
    not_a_plan = me.post("/api/posts/approve", json={"task_id": check})
    assert not_a_plan.status_code == 400 and not_a_plan.json()["error"] == "not_a_plan"

    # Someone else's plan is not found; a manager may approve it for her (audited).
    _, nosy, _ = _author(stack, "plan.nosy")
    assert nosy.post("/api/posts/approve", json={"task_id": task_id}).status_code == 404
    _, again_task, again_plan = _planned(stack, me, "Managed")
    wrong_owner = stack.client.post("/api/posts/approve", json={"task_id": again_task,
                                                                "user_id": "someone@example.com"})
    assert wrong_owner.status_code == 400
    by_manager = stack.client.post("/api/posts/approve", json={"task_id": again_task})
    result = stack.wait_status(by_manager.json()["task_id"], "SUCCESS")["result"]
    assert result["approved"] == sorted(p["id"] for p in again_plan)
    entries = stack.client.get("/api/audit").json()["entries"]
    assert any(e["action"] == "post.approve_plan" and e["target"] == email for e in entries)


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_managers_filter_the_calendar_by_owner_and_authors_see_only_theirs(stack):
    ann, ann_client, _ = _author(stack, "cal.ann")
    bea, bea_client, _ = _author(stack, "cal.bea")
    _, _, ann_plan = _planned(stack, ann_client, "Ann")
    _, _, bea_plan = _planned(stack, bea_client, "Bea")
    now = dt.datetime.now(dt.UTC)
    window = {"from": _iso(now), "to": _iso(now + dt.timedelta(days=95))}

    def ids(client, **params):
        answer = client.get("/api/calendar", params={**window, **params})
        assert answer.status_code == 200, answer.text
        return {p["id"] for p in answer.json()["posts"]}
    ann_ids, bea_ids = {p["id"] for p in ann_plan}, {p["id"] for p in bea_plan}
    assert ids(stack.client) >= ann_ids | bea_ids
    assert ids(stack.client, owner=ann) == ann_ids
    assert ids(stack.client, owner=bea) == bea_ids
    assert ids(stack.client, owner="nobody@example.com") == set()
    viewer = stack.client_for(stack.create_user(f"cal.viewer.{stack.name}@example.com", "viewer"))
    assert ids(viewer, owner=bea) == bea_ids
    # Authors: their own, as with /api/posts; naming someone else is refused.
    assert ids(ann_client) == ann_ids and ids(ann_client, owner=ann) == ann_ids
    refused = ann_client.get("/api/calendar", params={**window, "owner": bea})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert ann_client.get("/api/posts", params={"owner": bea}).status_code == 403
