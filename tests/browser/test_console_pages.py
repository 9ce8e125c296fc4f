"""The console's pages in a browser: workers (drain and undrain), schedules (run now)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

EMBEDDED = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


@EMBEDDED
def test_workers_page_drains_and_undrains_a_worker(page, stack):
    page.goto(stack.base_url + "/workers")
    row = page.locator("#workers-table tr[data-worker]").first
    expect(row).to_have_attribute("data-state", "running")
    expect(row).to_contain_text("thread")
    row.locator("button[data-action=drain]").click()  # the confirmation is accepted
    expect(page.locator("#flash")).to_contain_text("Draining worker")
    expect(row).to_have_attribute("data-state", "stopped")  # idle: it obeys at its heartbeat
    expect(row).to_contain_text("STOPPED")
    row.locator("button[data-action=undrain]").click()
    expect(row).to_have_attribute("data-state", "running")
    assert not any(w["draining"] for w in stack.client.get("/api/workers").json()["workers"])


@EMBEDDED
def test_schedules_page_shows_local_times_and_runs_a_job_now(page, stack):
    page.goto(stack.base_url + "/schedules")
    weekly = page.locator("#schedule-weekly_report")
    next_run = weekly.locator("time[data-local]").first
    expect(next_run).not_to_have_text(re.compile(r"T\d\d:"))  # formatted in the browser's zone
    weekly.locator("button[data-action=run-now]").click()
    flash = page.locator("#flash")
    expect(flash).to_contain_text("weekly_report queued as task")
    task_id = flash.locator("a").get_attribute("href").rsplit("/", 1)[1]
    stack.wait_status(task_id, "SUCCESS", timeout=30)
    page.reload()
    expect(weekly).to_contain_text(task_id[:24])


@EMBEDDED
def test_board_revokes_all_matching_after_a_confirmation_stating_the_count(browser, stack):
    owner = "bulk-board@example.com"
    # Paused, the tasks wait however slowly the browser gets to the button (a stalled run
    # would meet its timeout first on a busy machine).
    stack.client.post("/api/queue/pause", json={"type": "content_generation"}).raise_for_status()
    try:
        ids = [stack.queue(platforms=["twitter"], count_per_platform=1, user_id=owner,
                           book={"title": f"Board {i}"}) for i in range(3)]
        page = browser.page(stack)
        page.goto(stack.base_url + f"/?owner={owner}")
        expect(page.locator(f"#task-{ids[0]} .priority")).to_have_text("interactive · priority 10")
        page.locator("button[data-action=bulk-revoke]").click()
        confirm = page.locator("#flash .bulk-confirm")
        expect(confirm).to_have_attribute("data-matched", "3")
        expect(confirm).to_contain_text("Revoke 3 tasks")
        for task_id in ids:  # asking changed nothing
            assert stack.task(task_id)["status"] == "PENDING"
        confirm.locator("button[data-action=confirm-bulk]").click()
        expect(page.locator("#flash")).to_contain_text("3 of 3 matching task(s) revoked")
        for task_id in ids:
            expect(page.locator(f"#task-{task_id}")).to_have_attribute("data-status", "REVOKED")
    finally:
        stack.client.post("/api/queue/resume", json={"type": "content_generation"}).raise_for_status()


@EMBEDDED
def test_bulk_confirmation_works_without_javascript(browser, stack):
    owner = "bulk-nojs@example.com"
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, user_id=owner,
                          book={"title": "STALL nojs"})
    stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": True})
    stack.wait_status(task_id, "REVOKED")
    page = browser.page(stack, javascript=False)
    page.goto(stack.base_url + f"/?owner={owner}&status=REVOKED")
    page.locator("button[data-action=bulk-retry]").click()
    expect(page.locator(".bulk-confirm")).to_contain_text("Retry 1 task")
    page.locator("button[data-action=confirm-bulk]").click()
    page.wait_for_url(f"{stack.base_url}/?status=REVOKED&owner=bulk-nojs%40example.com")
    retried = stack.client.get("/api/tasks", params={"owner": owner}).json()["tasks"]
    assert any(t["parent_id"] == task_id for t in retried)
    stack.client.post("/api/tasks/bulk", json={"action": "revoke", "filter": {"owner": owner},
                                               "terminate": True})


@EMBEDDED
def test_board_pauses_and_resumes_the_queue(browser, stack):
    page = browser.page(stack)
    page.goto(stack.base_url + "/")
    panel = page.locator("#pause-panel")
    try:
        panel.locator("button[data-action=pause-all]").click()
        expect(panel.locator("[data-queue-state]")).to_have_attribute("data-queue-state", "paused")
        expect(page.locator("#health-panel .paused-banner")).to_contain_text("every task type since")
        panel.locator("button[data-action=resume-all]").click()
        expect(page.locator("#flash")).to_contain_text("Resumed every task type")
        expect(panel.locator("[data-queue-state]")).to_have_attribute("data-queue-state", "running")
        expect(page.locator("#health-panel .paused-banner")).to_have_count(0)

        panel.locator("select[name=type]").select_option("weekly_report")
        panel.locator("button[data-action=pause-type]").click()
        expect(panel).to_contain_text("Paused: Weekly report")
        panel.locator("select[name=type]").select_option("weekly_report")
        panel.locator("button[data-action=resume-type]").click()
        expect(panel.locator("[data-queue-state]")).to_have_attribute("data-queue-state", "running")
    finally:
        stack.client.post("/api/queue/resume", json={})
