"""The author's path in Chromium, at desktop and phone width: add a book → generate (posts
appear as they are written) → edit and approve → schedule → see it on the calendar → move
it → download the exports. The queue mode does not change these pages: one stack suffices."""
from __future__ import annotations

import csv
import io
import os
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DEADLINE_MS
from tests.support import ROOT, wait_until

PASSWORD = "a long password"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"{page.url} is {width}px wide on a {viewport}px screen"


def _screenshot(page, name: str, tmp_path) -> None:
    """The README's pictures are refreshed on request (UPDATE_SCREENSHOT=1 make test)."""
    target = (ROOT / "docs" / name if os.environ.get("UPDATE_SCREENSHOT") == "1"
              else tmp_path / name)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
@pytest.mark.parametrize("screen", list(WIDTHS))
def test_author_path(stack, browser, screen, tmp_path):
    email = f"path.{screen}@example.com"
    stack.create_user(email, "author", password=PASSWORD)
    width, height = WIDTHS[screen]
    page = browser.page(stack, email=email, password=PASSWORD, width=width, height=height)
    base = stack.base_url

    # Home, with nothing yet: one next step.
    expect(page.get_by_role("heading", name="Start with a book")).to_be_visible()
    page.get_by_role("button", name="Add your first book").click()
    page.fill("input[name=title]", "SLOW Salt Road")  # SLOW: the model takes its time
    page.fill("input[name=link]", "https://books.example.com/salt")
    page.fill("input[name=keywords]", "desert, caravan")
    page.get_by_role("button", name="Add the book").click()
    expect(page.locator(".flash-success")).to_contain_text("Saved")
    page.get_by_role("button", name="Generate posts").click()

    # Generate: a batch over the threshold runs in the background, shown live here.
    page.fill("input[name=count_per_platform]", "6")  # twitter and bluesky by default: 12
    page.click("button.generate-button")
    live = page.locator("#generate-result .queued")
    expect(live).to_be_visible()
    expect(live.locator("#live")).to_have_attribute("data-state", "live")
    counts = []

    def written() -> bool:
        state = page.evaluate("""() => { const l = document.querySelector('#task-live');
            return l && [l.dataset.status, l.querySelectorAll('.post').length]; }""")
        counts.append(state[1] if state else 0)
        return bool(state) and state[0] == "SUCCESS"
    wait_until(written, DEADLINE_MS / 1000, "the batch to finish on the Generate page", interval=0.1)
    assert any(0 < n < 12 for n in counts), counts  # posts appeared while it ran
    expect(live.locator(".post")).to_have_count(12)
    _no_sideways_scroll(page)

    # Home: the book, its latest posts by platform, the drafts waiting.
    page.goto(base + "/")
    card = page.locator(".book-card")
    expect(card.locator("h2")).to_contain_text("SLOW Salt Road")
    expect(card.locator(".latest-posts li")).to_have_count(2)
    expect(card).to_contain_text("12 drafts to review")
    _no_sideways_scroll(page)

    # Review: edit one draft, approve it and one more per platform.
    card.get_by_role("link", name="12 drafts to review").click()
    first = page.locator(".post-card").first
    post_id = first.get_attribute("data-post")
    first.locator("textarea").fill("Crossing the dunes with a secret. https://books.example.com/salt")
    first.get_by_role("button", name="Save text").click()
    expect(page.locator(f"#post-{post_id} textarea")).to_have_value(re.compile("^Crossing the dunes"))
    page.locator(f"#post-{post_id}").get_by_role("button", name="Approve").click()
    for platform in ("twitter", "bluesky", "twitter"):
        page.locator(f".post-card.platform-{platform}").first.get_by_role("button", name="Approve").click()
    expect(page.locator(".post-card")).to_have_count(8)
    _no_sideways_scroll(page)

    # Schedule the approved ones; the calendar opens on the first day.
    page.goto(base + "/posts?status=approved")
    expect(page.locator(".post-card")).to_have_count(4)
    page.get_by_role("button", name="Schedule", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/calendar\?"))
    expect(page.locator(".flash-success")).to_contain_text("4 posts scheduled")
    expect(page.locator(".calendar details.entry")).to_have_count(4)  # two days, both platforms
    entry = page.locator(f"#entry-{post_id}")
    expect(entry).to_be_visible()
    _no_sideways_scroll(page)
    if screen == "desktop":
        _screenshot(page, "calendar.png", tmp_path)

    # Move it by editing its time: to the 28th of next month at 11:30.
    entry.locator("summary").click()
    scheduled = stack.client.get(f"/api/posts/{post_id}").json()["scheduled_at"]
    year, month = int(scheduled[:4]), int(scheduled[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    entry.locator("input[name=scheduled_at]").fill(f"{year}-{month:02d}-28T11:30")
    entry.get_by_role("button", name="Move").click()
    moved = stack.client.get(f"/api/posts/{post_id}").json()
    assert moved["status"] == "scheduled" and moved["scheduled_at"].startswith(f"{year}-{month:02d}-28T")
    page.goto(f"{base}/calendar?view=week&date={year}-{month:02d}-28")
    expect(page.locator(f"#day-{year}-{month:02d}-28 #entry-{post_id}")).to_contain_text("11:30")
    _no_sideways_scroll(page)

    # Exports, as downloaded from the posts page.
    page.goto(base + "/posts?status=scheduled")
    page.locator("details.exports summary").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="All platforms as CSV").click()
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows[0] == ["platform", "scheduled_at", "text", "link", "book"] and len(rows) == 5
    platform = moved["platform"]
    label = {"twitter": "X / Twitter", "bluesky": "Bluesky"}[platform]
    with page.expect_download() as download:
        page.locator("details.exports").get_by_role("link", name=label, exact=True).click()
    lines = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert any(line[1].startswith("Crossing the dunes") for line in lines)  # the edited text
    assert all(re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", line[0]) for line in lines)

    # Home again: what goes out next.
    page.goto(base + "/")
    expect(page.locator(".next-list li")).to_have_count(4)
    _no_sideways_scroll(page)
    if screen == "desktop":
        _screenshot(page, "author-home.png", tmp_path)

    # The task is the author's to follow, from their tasks; the task page fits a phone.
    page.goto(base + "/tasks")
    task_link = page.locator("#board a.task-id").first
    task_link.click()
    expect(page.locator("#task-live")).to_have_attribute("data-status", "SUCCESS")
    _no_sideways_scroll(page)


# Words a line break cut in two: a word whose text spans more than one line box (ids in
# <code> are not words).
BROKEN_WORDS = """(selector) => {
  const broken = [];
  for (const element of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("code")) continue;  // ids may break anywhere
      for (const match of node.textContent.matchAll(/[A-Za-z]{2,}/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(match[0]);
      }
    }
  }
  return broken;
}"""


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_board_and_task_page_fit_a_phone(stack, browser):
    task_id = stack.queue(platforms=["twitter", "bluesky", "linkedin"], count_per_platform=4,
                          user_id="a.rather.long.address@example.com",
                          book={"title": "Extraordinarily Long Titles of Lighthouses"})
    stack.wait_status(task_id, "SUCCESS", timeout=60)
    page = browser.page(stack, width=390, height=844)
    page.goto(stack.base_url + "/")
    expect(page.locator(f"#task-{task_id}")).to_be_visible()
    _no_sideways_scroll(page)
    assert page.evaluate(BROKEN_WORDS, "#board .summary, #board .owner, #board .status") == []
    page.goto(f"{stack.base_url}/tasks/{task_id}")
    expect(page.locator("#task-live")).to_have_attribute("data-status", "SUCCESS")
    _no_sideways_scroll(page)
    assert page.evaluate(BROKEN_WORDS, "h1, .post-text") == []


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_author_home_shows_running_work_live(stack, browser):
    email = "busy@example.com"
    stack.create_user(email, "author", password=PASSWORD)
    page = browser.page(stack, email=email, password=PASSWORD)
    task_id = stack.queue(platforms=["twitter", "bluesky"], count_per_platform=8, user_id=email,
                          book={"title": "SLOW Morning Tide"})
    page.goto(stack.base_url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    running = page.locator(f"#rows-active #task-{task_id}")
    expect(running.locator(".progress-text")).to_have_text(re.compile(r"^([1-9]|1[0-5])/16$"))
    expect(running).to_have_count(0, timeout=30_000)  # finished: it leaves the running list
