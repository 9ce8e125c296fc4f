"""The generate form, the task page, filters, autonomous operations, stats, and forms that
work without JavaScript. Mode-independent, so they run against the embedded stack only."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import expect_status, free_workers, open_live, row

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)
NO_TITLE = "Enter the book's title, or choose a saved book."


def test_small_batch_shows_posts_inline_by_platform_with_copy_buttons(stack, page):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base_url)
    page.goto(stack.base_url + "/generate")
    page.fill("input[name='book.title']", "The Salt Road")
    page.fill("input[name='book.author']", "Ann Lee")
    page.check("input[name=platforms][value=linkedin]")  # with the defaults: X and Bluesky
    page.fill("input[name=count_per_platform]", "2")  # 6 posts: answered at once
    page.click("button.generate-button")

    result = page.locator("#generate-result")
    expect(result.locator(".post")).to_have_count(6)
    expect(result.locator(".platform-posts h3")).to_have_text(
        [re.compile("^X / Twitter"), re.compile("^LinkedIn"), re.compile("^Bluesky")])
    for platform, limit in (("twitter", 280), ("linkedin", 3000), ("bluesky", 300)):
        lengths = result.locator(f"#platform-{platform} .length").all_inner_texts()
        assert len(lengths) == 2
        for text in lengths:
            length, shown_limit = map(int, re.match(r"(\d+) / (\d+)", text).groups())
            assert shown_limit == limit and 0 < length <= limit

    first = result.locator(".post").first
    first.locator("button.copy").click()
    expect(first.locator("button.copy")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == first.locator(".post-text").inner_text().strip()
    # The form keeps its values for another go.
    expect(page.locator("input[name='book.title']")).to_have_value("The Salt Road")


def test_bad_form_shows_errors_next_to_the_fields(stack, page):
    page.goto(stack.base_url + "/generate")
    for name in ("twitter", "bluesky"):
        page.uncheck(f"input[name=platforms][value={name}]")
    page.fill("input[name=count_per_platform]", "0")
    page.click("button.generate-button")

    expect(page.locator("fieldset.platforms [data-error-for=platforms]")).to_have_text(
        "Choose at least one platform.")
    title = page.locator("label", has=page.locator("input[name='book.title']"))
    expect(title.locator("[data-error-for='book.title']")).to_have_text(NO_TITLE)
    expect(page.locator("[data-error-for=count_per_platform]")).to_be_visible()
    expect(page.locator("input[name=count_per_platform]")).to_have_attribute("aria-invalid", "true")

    # A request over the per-request limit is refused with the reason beside the count.
    page.fill("input[name='book.title']", "Too many")
    for checkbox in page.locator("input[name=platforms]").all():
        checkbox.check()
    page.fill("input[name=count_per_platform]", "50")
    page.click("button.generate-button")
    expect(page.locator("[data-error-for=count_per_platform]")).to_contain_text("at most 200")
    expect(page.locator("[data-error-for=platforms]")).to_have_count(0)
    expect(page.locator("#generate-result .post")).to_have_count(0)


def test_generate_for_a_saved_book(stack, page):
    book = stack.client.post("/api/books", json={"title": "Saved Shores", "author": "Ines Vale"})
    assert book.status_code == 201, book.text
    page.goto(stack.base_url + "/generate")
    page.select_option("select[name=book_id]", label="Saved Shores by Ines Vale")
    expect(page.locator("input[name='book.title']")).to_be_hidden()  # not asked for a saved book
    page.fill("input[name=count_per_platform]", "5")  # 10 posts: queued
    page.click("button.generate-button")
    queued = page.locator("#generate-result .queued")
    expect(queued).to_be_visible()
    expect(page.locator(".field-error")).to_have_count(0)  # no title needed for a saved book
    task = stack.task(queued.get_attribute("data-task"))
    assert task["params"]["book"]["title"] == "Saved Shores"
    assert task["params"]["book_id"] == book.json()["id"]


def test_task_page_shows_posts_appear_while_the_task_runs(stack, page):
    task_id = stack.queue(platforms=["twitter", "bluesky", "threads", "mastodon", "linkedin"],
                          count_per_platform=2, book={"title": "SLOW paper boats"})
    open_live(page, f"{stack.base_url}/tasks/{task_id}")
    # Posts counted while the task is still running: some, then more, never a reload.
    page.wait_for_function("""() => {
        const live = document.querySelector('#task-live');
        const count = live.querySelectorAll('.post').length;
        return live.dataset.status === 'STARTED' && count > 0 && count < 10;
    }""")
    live = page.locator("#task-live")
    expect(live).to_have_attribute("data-status", "SUCCESS")
    expect(live.locator(".post")).to_have_count(10)
    expect(live.locator(".platform-posts")).to_have_count(5)
    expect(live.locator("table.timeline")).to_contain_text("SUCCESS")
    expect(live.locator(".progress-text")).to_have_text("10/10")
    expect(page.locator(".parameters")).to_contain_text("SLOW paper boats")


def test_titles_render_as_text(stack, page):
    title = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": title})
    stack.wait_status(task_id, "SUCCESS")
    open_live(page, f"{stack.base_url}/tasks/{task_id}")
    expect(page.locator("hgroup p")).to_contain_text(title)
    expect(page.locator(".parameters dd").first).to_have_text(title)
    open_live(page, f"{stack.base_url}/?q={task_id}")
    expect(row(page, task_id).locator(".summary")).to_contain_text(title)
    assert page.evaluate("window.__xss") is None


def test_filters_live_in_the_url_and_apply_to_arriving_rows(stack, page):
    board = open_live(page, stack.base_url + "/?owner=filter-fan")
    other = stack.queue(platforms=["twitter"], count_per_platform=1, user_id="someone-else",
                        book={"title": "Not for this board"})
    mine = stack.queue(platforms=["twitter"], count_per_platform=1, user_id="filter-fan",
                       book={"title": "Filtered in"})
    stack.wait_status(other, "SUCCESS")
    expect_status(board, mine, "SUCCESS", section="history")
    expect(row(board, other)).to_have_count(0)

    board.select_option("select[name=status]", "SUCCESS")
    board.click("form.filters button[type=submit]")
    expect(board).to_have_url(re.compile(r"status=SUCCESS"))
    expect(board).to_have_url(re.compile(r"owner=filter-fan"))
    expect(board.locator("select[name=status]")).to_have_value("SUCCESS")
    expect(row(board, mine)).to_be_visible()

    # History is paginated from the database: 6 finished tasks of this owner, 5 a page.
    for n in range(5):
        stack.wait_status(stack.queue(platforms=["bluesky"], count_per_platform=1, user_id="filter-fan",
                                      book={"title": f"Page filler {n}"}), "SUCCESS")
    open_live(board, stack.base_url + "/?owner=filter-fan&per_page=5")
    expect(board.locator("#rows-history tr")).to_have_count(5)
    expect(board.locator(".pagination")).to_contain_text("Page 1 of 2")
    board.locator(".pagination a[rel=next]").click()
    expect(board).to_have_url(re.compile(r"page=2"))
    expect(board.locator("#rows-history tr")).to_have_count(1)
    expect(row(board, mine)).to_be_visible()  # the oldest, on the last page


def test_autonomous_operations_from_the_board(stack, page, fake_llm):
    board = open_live(page, stack.base_url + "/")
    panel = board.locator("#autonomous")
    panel.get_by_role("button", name="Start").click()
    expect(panel.locator(".auto-state")).to_have_text("ON")

    panel.get_by_role("button", name="Run daily operations now").click()
    flash = board.locator("#flash .flash")
    expect(flash).to_contain_text("Daily operations queued as task")
    task_id = flash.locator("a").get_attribute("href").rsplit("/", 1)[1]
    try:
        expect(row(board, task_id)).to_be_visible()  # arrived over the stream
        expect(row(board, task_id).locator("td").nth(1)).to_contain_text("Daily operations")
        expect(panel).to_contain_text(task_id[:18])  # the panel's next health tick knows it

        panel.get_by_role("button", name="Stop").click()
        expect(panel.locator(".auto-state")).to_have_text("OFF")
        assert stack.client.get("/api/autonomous/status").json()["enabled"] is False
    finally:
        # It writes for every recent author, some with books whose model calls hang.
        free_workers(stack, fake_llm, [task_id])


def test_stats_and_health_pages(stack, page):
    stack.wait_status(stack.queue(platforms=["twitter"], count_per_platform=1,
                                  book={"title": "Counted"}), "SUCCESS")
    page.goto(stack.base_url + "/stats")
    expect(page.locator("#chart-finished .uplot")).to_have_count(1)
    expect(page.locator("[data-run-times=content_generation] .uplot")).to_have_count(1)
    expect(page.locator("table.percentiles")).to_contain_text("Post generation")
    expect(page.locator("table.counts")).to_contain_text("Post generation")

    open_live(page, stack.base_url + "/health")
    panel = page.locator("#health-panel")
    expect(panel).to_contain_text("Embedded (SQLite) · reachable")
    expect(panel.locator(".workers-table")).to_contain_text("ALIVE")
    checked = panel.locator("time").last.get_attribute("datetime")
    expect(panel.locator("time").last).not_to_have_attribute("datetime", checked)  # re-rendered live


def test_forms_work_without_javascript(stack, browser):
    page = browser.page(stack, javascript=False)
    page.goto(stack.base_url + "/generate")
    page.fill("input[name='book.title']", "Plain forms")
    page.click("button.generate-button")
    expect(page).to_have_url(re.compile(r"/generate\?batch=now-"))  # redirected after the post
    expect(page.locator("#generate-result .post")).to_have_count(2)
    page.reload()  # the result page does not post again
    expect(page.locator("#generate-result .post")).to_have_count(2)

    page.fill("input[name='book.title']", "")
    page.click("button.generate-button")
    expect(page.locator("[data-error-for='book.title']")).to_have_text(NO_TITLE)

    page.fill("input[name='book.title']", "SLOW plain background")
    page.fill("input[name=count_per_platform]", "6")
    page.click("button.generate-button")
    expect(page).to_have_url(re.compile(r"/generate\?task="))
    task_id = page.locator(".queued").get_attribute("data-task")

    stack.client.post(f"/api/tasks/revoke/{task_id}", json={})
    page.goto(f"{stack.base_url}/tasks/{task_id}")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("h1")).to_have_text(f"Run task {task_id} again?")  # asked first
    page.get_by_role("button", name="Yes, run it again").click()
    expect(page).not_to_have_url(re.compile(task_id + "$"))
    expect(page.locator("hgroup")).to_contain_text(f"retry of {task_id}")
    retry_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name=re.compile("^(Stop|Revoke)$")).click()
    page.get_by_role("button", name="Yes, stop it").click()  # back here, revoked
    expect(page).to_have_url(re.compile(retry_id + "$"))
    expect(page.locator("#task-live")).to_have_attribute("data-status", "REVOKED")


def test_an_author_sees_only_their_own_tasks(stack, browser):
    stack.create_user("ada@example.com", "author")
    page = browser.page(stack, email="ada@example.com")
    board = open_live(page, stack.base_url + "/tasks")  # her home is her books
    board.evaluate("""() => { window.__sse = [];
        document.addEventListener('htmx:sse:before:message',
                                  (e) => window.__sse.push(e.detail.message.data)); }""")
    others = stack.queue(platforms=["twitter"], count_per_platform=1, user_id="someone-else",
                         book={"title": "Somebody else's book"})
    hers = stack.queue(platforms=["twitter"], count_per_platform=1, user_id="ada@example.com",
                       book={"title": "Ada's book"})
    stack.wait_status(others, "SUCCESS")
    expect_status(board, hers, "SUCCESS", section="history")
    expect(row(board, others)).to_have_count(0)
    assert not [m for m in board.evaluate("window.__sse") if others in m]  # never even sent
    theirs = "#board tr[data-owner]:not([data-owner='ada@example.com'])"
    assert board.locator(theirs).count() == 0
    expect(board.locator("input[name=owner]")).to_have_count(0)
    expect(board.locator("#autonomous button")).to_have_count(0)  # managers only

    assert page.goto(f"{stack.base_url}/tasks/{others}").status == 404
    page.goto(stack.base_url + "/generate")
    expect(page.locator(".for-whom")).to_contain_text("ada@example.com")
