"""A launch campaign's plan approved in one click (from the book page or the calendar), and
a manager's owner filter on the calendar. Mode-independent: the embedded stack only."""
from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)

PASSWORD = "a long password"


def _planned(stack, email: str, title: str, launch: dt.date) -> tuple[dict, str, list[int]]:
    """An author with a book launching on `launch` and its campaign planned (twitter)."""
    stack.add_user(email, "author", PASSWORD)
    book = stack.client.post("/api/books", json={
        "title": title, "genre": "mystery", "link": "https://ex.com/l", "user_id": email,
        "launch_date": launch.isoformat()}).json()
    queued = stack.client.post(f"/api/books/{book['id']}/campaign", json={"platforms": ["twitter"]})
    task_id = queued.json()["task_id"]
    assert stack.task(task_id)["owner"] == email  # a manager plans for the author
    stack.wait_status(task_id, "SUCCESS", timeout=60)
    posts = stack.client.get("/api/posts", params={"book_id": book["id"]}).json()["posts"]
    return book, task_id, [p["id"] for p in posts]


def _statuses(stack, ids: list[int]) -> set[str]:
    return {stack.client.get(f"/api/posts/{i}").json()["status"] for i in ids}


def test_author_approves_a_whole_plan_in_one_click(stack, browser):
    launch = dt.date.today() + dt.timedelta(days=40)
    email = f"plan.page.{stack.name}@example.com"
    book, task_id, ids = _planned(stack, email, "Lantern Bay", launch)
    page = browser.page(stack, email=email, password=PASSWORD, width=390, height=844)

    page.goto(f"{stack.base_url}/books/{book['id']}")  # the book page lists its plan
    plan = page.locator(f"#plan-{task_id}")
    expect(plan).to_contain_text(f"{len(ids)} drafts for “Lantern Bay”")
    expect(plan.get_by_role("button", name=f"Approve all {len(ids)}")).to_be_visible()

    page.goto(f"{stack.base_url}/calendar?date={launch.isoformat()}")  # and so does the calendar
    expect(page.locator(".entry.state-draft").first).to_be_visible()
    page.locator(f"#plan-{task_id}").get_by_role("button", name=f"Approve all {len(ids)}").click()
    expect(page.locator(".flash-success")).to_have_text(f"{len(ids)} posts approved.")
    assert page.url.startswith(f"{stack.base_url}/calendar?date={launch.isoformat()}")
    expect(page.locator(f"#plan-{task_id}")).to_have_count(0)
    expect(page.locator(".entry.state-draft")).to_have_count(0)
    expect(page.locator(".entry.state-approved").first).to_be_visible()
    assert _statuses(stack, ids) == {"approved"}
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the calendar is {width}px wide on a phone"


def test_manager_filters_the_calendar_by_owner(stack, browser):
    launch = dt.date.today() + dt.timedelta(days=50)
    ann, bea = (f"cal.{name}.page.{stack.name}@example.com" for name in ("ann", "bea"))
    _, _, ann_ids = _planned(stack, ann, "Ann's Atlas", launch)
    _, _, bea_ids = _planned(stack, bea, "Bea's Bridge", launch)
    page = browser.page(stack)
    page.goto(f"{stack.base_url}/calendar?date={launch.isoformat()}")

    def shown() -> set[int]:
        return {int(e.get_attribute("data-post")) for e in page.locator(".entry").all()}
    assert shown() & set(ann_ids) and shown() & set(bea_ids)  # everyone's, at first

    page.locator("select[name=owner]").select_option(ann)
    page.locator(".calendar-owner").get_by_role("button", name="Show").click()
    page.wait_for_url(lambda url: "owner=" in url)
    assert shown() and shown() <= set(ann_ids)
    expect(page.locator("select[name=owner]")).to_have_value(ann)
    expect(page.locator(".plans")).to_contain_text(ann)
    expect(page.locator(".plans")).not_to_contain_text(bea)
    page.locator("a[rel=next]").click()  # the filter stays while browsing
    page.wait_for_url(lambda url: launch.isoformat() not in url)
    expect(page.locator("select[name=owner]")).to_have_value(ann)
    assert shown() <= set(ann_ids)

    # An author sees her own calendar only; naming someone else is refused.
    author = browser.page(stack, email=bea, password=PASSWORD)
    refused = author.goto(f"{stack.base_url}/calendar?owner={ann}")
    assert refused.status == 403
    expect(author.locator(".error-page")).to_contain_text("authors see their own posts only")
    author.goto(f"{stack.base_url}/calendar?date={launch.isoformat()}")
    expect(author.locator("select[name=owner]")).to_have_count(0)
    assert {int(e.get_attribute("data-post")) for e in author.locator(".entry").all()} <= set(bea_ids)
