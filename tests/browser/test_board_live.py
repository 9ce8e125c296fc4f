"""The task board updates itself: rows appear, change in place and move to history, actions
show at once, and a board survives its server restarting, all without a reload."""
from __future__ import annotations

import os
import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import (
    STATUS_RECORDER, expect_status, fill_workers, free_workers, open_live, row,
)
from tests.support import ROOT, TIMEOUT_BEYOND_THE_TEST, wait_until


def test_large_batch_from_the_generate_page_runs_live_on_the_board(stack, browser):
    board = open_live(browser.page(stack), stack.base_url + "/")
    board.evaluate(STATUS_RECORDER)

    generate = browser.page(stack)
    generate.goto(stack.base_url + "/generate")
    generate.fill("input[name='book.title']", "SLOW tides of the north")
    generate.check("input[name=platforms][value=threads]")  # with the defaults: 3 platforms
    generate.fill("input[name=count_per_platform]", "4")  # 12 posts: over the threshold
    generate.click("button.generate-button")
    queued = generate.locator("#generate-result .queued")
    expect(queued).to_be_visible()
    task_id = queued.get_attribute("data-task")
    expect(queued.locator("a.board-link")).to_have_attribute("href", f"/tasks#task-{task_id}")

    # On the board, opened before the task existed: it appears, runs with progress, finishes.
    expect(row(board, task_id)).to_be_visible()
    expect_status(board, task_id, "STARTED", section="active")
    progress = row(board, task_id).locator(".progress-text")
    expect(progress).to_have_text(re.compile(r"^([1-9]|1[01])/12$"))
    expect_status(board, task_id, "SUCCESS", section="history")
    expect(progress).to_have_text("12/12")

    statuses = board.evaluate("window.__statuses")[task_id]
    # The board conflates a row's changes for a client that falls behind, so PENDING may be
    # passed over; what it shows must still only move forward and end where the task did.
    order = ["PENDING", "STARTED", "SUCCESS"]
    assert statuses[-1] == "SUCCESS" and statuses == sorted(statuses, key=order.index), statuses
    assert "STARTED" in statuses, statuses
    assert board.evaluate("window.__loaded") is True  # never reloaded
    assert board.locator(f"#rows-active #task-{task_id}").count() == 0


def test_revoke_a_waiting_task_and_stop_a_running_one_with_the_buttons(fresh_stack, browser, fake_llm):
    # A stack of its own: the workers must stay held for the whole test, and the shared
    # stacks' 6 s generation timeout let them go (a loaded run spent longer than that before
    # the buttons: the waiting task ran, the running one failed by its timeout). One mode is
    # enough for the buttons; tests/test_revoke_and_timeouts.py revokes and stops in each.
    stack = fresh_stack("embedded", **TIMEOUT_BEYOND_THE_TEST).start()
    # Every worker thread up first, or one not yet started would run the task that must wait.
    full = int(stack.env["WORKER_CONCURRENCY"])
    wait_until(lambda: stack.capacity() >= full, 30, f"{full} workers")
    stuck = fill_workers(stack)
    waiting = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "Waiting room"})
    try:
        board = open_live(browser.page(stack), stack.base_url + "/")
        expect_status(board, waiting, "PENDING", section="active")

        # Hold the revoke request so that the "requested" state can be seen before the answer.
        held = []
        board.route(f"**/tasks/{waiting}/revoke", lambda route: held.append(route))
        row(board, waiting).locator("button[data-action=revoke]").click()
        expect(row(board, waiting)).to_have_attribute("data-requested", "revoke requested")
        expect(row(board, waiting).locator(".requested")).to_have_text("revoke requested…")
        wait_until(lambda: held, 5, "the revoke request to leave the browser")
        held[0].continue_()
        expect_status(board, waiting, "REVOKED", section="history")
        expect(row(board, waiting)).not_to_have_attribute("data-requested", re.compile(".*"))
        expect(board.locator("#flash")).to_contain_text(f"Revoke requested for task {waiting}")
        assert stack.task(waiting)["started_at"] is None  # it never ran

        running = stuck[0]
        expect_status(board, running, "STARTED", section="active")
        row(board, running).locator("input[name=terminate]").check()
        row(board, running).locator("button[data-action=stop]").click()
        expect_status(board, running, "REVOKED", section="history")
        assert stack.task(running)["terminate"] is True
        expect(row(board, running).locator("button[data-action=retry]")).to_be_visible()
    finally:
        free_workers(stack, fake_llm, stuck)


@pytest.mark.parametrize("kind", ["embedded", "redis"])
def test_open_board_shows_the_final_state_after_a_server_restart(fresh_stack, browser, kind):
    stack = fresh_stack(kind, **TIMEOUT_BEYOND_THE_TEST).start()
    board = open_live(browser.page(stack), stack.base_url + "/")
    board.evaluate(STATUS_RECORDER)
    task_id = stack.queue(platforms=["twitter", "bluesky", "threads"], count_per_platform=4,
                          book={"title": "SLOW lanterns at sea"})
    expect_status(board, task_id, "STARTED", section="active")
    expect(row(board, task_id).locator(".progress-text")).to_have_text(re.compile(r"^[1-9]\d*/12$"))

    started = time.monotonic()
    # Embedded: the running task goes back to the queue; Redis: its worker goes on.
    assert stack.web.stop() == 0
    assert time.monotonic() - started < 8  # the open board's stream does not hold the server
    expect(board.locator("#live")).to_have_attribute("data-state", "reconnecting")
    stack.start_web()

    expect(board.locator("#live")).to_have_attribute("data-state", "live", timeout=20_000)
    expect_status(board, task_id, "SUCCESS", section="history", timeout=40_000)
    expect(row(board, task_id).locator(".progress-text")).to_have_text("12/12")
    assert board.evaluate("window.__loaded") is True  # the same page, never reloaded
    assert board.locator(f"#task-{task_id}").count() == 1


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_busy_board_screenshot(stack, browser, fake_llm, tmp_path):
    """docs/board.png: tasks waiting, running with progress, finished, failed and revoked."""
    running = [stack.queue(platforms=["twitter", "linkedin", "bluesky"], count_per_platform=8,
                           user_id=owner, book={"title": title})
               for owner, title in (("mara", "SLOW The Lighthouse Keeper's Daughter"),
                                    ("jon", "SLOW Salt and Iron"))]
    stalled = [stack.queue(platforms=["mastodon"], count_per_platform=1, user_id=owner,
                           book={"title": f"STALL {title}"})
               for owner, title in (("ines", "Winter Orchard"), ("anonymous", "Blue Hours"))]
    for task_id in running + stalled:
        stack.wait_status(task_id, "STARTED")
    board = open_live(browser.page(stack, width=1360, height=1000), stack.base_url + "/")
    waiting: list[str] = []
    try:
        # A model call that never answers fails at the (test) timeout of 6 s and frees its
        # worker; the tasks queued then fill the workers again and leave some waiting.
        expect_status(board, stalled[0], "FAILURE", section="history", timeout=15_000)
        waiting += [stack.queue(platforms=["instagram", "threads"], count_per_platform=6,
                                user_id=owner, book={"title": title})
                    for owner, title in (("mara", "SLOW The Cartographer's Son"),
                                         ("ines", "SLOW Quiet Harbour"), ("jon", "Paper Moons"),
                                         ("ines", "Letters from Lisbon"))]
        stack.client.post(f"/api/tasks/revoke/{waiting[2]}", json={})
        waiting.append(stack.client.post(f"/api/tasks/retry/{waiting[2]}").json()["task_id"])
        waiting.append(stack.client.post("/api/autonomous/execute-daily").json()["task_id"])
        expect_status(board, waiting[-1], "PENDING", section="active")
        expect(row(board, waiting[0]).locator(".progress-text")).to_have_text(
            re.compile(r"^([1-9]|1[01])/12$"))  # caught while it runs
        (ROOT / "docs").mkdir(exist_ok=True)
        # The README's picture is refreshed on request (UPDATE_SCREENSHOT=1 make test), so
        # that a test run leaves the work tree as it found it.
        target = (ROOT / "docs" / "board.png" if os.environ.get("UPDATE_SCREENSHOT") == "1"
                  else tmp_path / "board.png")
        board.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 10_000
    finally:
        free_workers(stack, fake_llm, running + stalled + waiting)
