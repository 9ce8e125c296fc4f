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
