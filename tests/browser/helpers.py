"""What the browser tests do again and again: open a live page, find rows, fill workers."""
from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support import TIMEOUT_BEYOND_THE_TEST, wait_until

# Records every status each board row shows, in order, from the DOM itself: an attribute
# change reports the value it replaced, and the current value closes the list.
STATUS_RECORDER = """() => {
  const seen = window.__statuses = {};
  const note = (id, status) => {
    const list = (seen[id] ||= []);
    if (status && list[list.length - 1] !== status) list.push(status);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes" && r.target.dataset.task) note(r.target.dataset.task, r.oldValue);
    }
    for (const row of document.querySelectorAll("#board tr[data-task]")) {
      note(row.dataset.task, row.dataset.status);
    }
  }).observe(document.getElementById("board"), {
    subtree: true, childList: true, attributes: true,
    attributeFilter: ["data-status"], attributeOldValue: true,
  });
  window.__loaded = true;  // gone if the page ever reloads
}"""


def open_live(page: Page, url: str) -> Page:
    """Open a dashboard page and wait until its event stream is connected."""
    page.goto(url)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    return page


def row(page: Page, task_id: str):
    return page.locator(f"#task-{task_id}")


def expect_status(page: Page, task_id: str, status: str, *, section: str | None = None,
                  timeout: float = 20_000) -> None:
    scope = f"#rows-{section} " if section else ""
    locator = page.locator(f"{scope}#task-{task_id}")
    expect(locator).to_have_attribute("data-status", status, timeout=timeout)
    expect(locator.locator(".status")).to_have_text(status)


def fill_workers(stack, title: str = "STALL") -> list[str]:
    """Occupy every worker with a task that hangs on its model call until released. Its
    timeout would let the worker go too, so the stack must set one the test never reaches."""
    assert stack.env.get("TIMEOUT_CONTENT_GENERATION") == TIMEOUT_BEYOND_THE_TEST[
        "TIMEOUT_CONTENT_GENERATION"], "fill_workers needs a stack with TIMEOUT_BEYOND_THE_TEST"
    stuck = [stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": f"{title} {i}"})
             for i in range(stack.capacity())]
    for task_id in stuck:
        stack.wait_status(task_id, "STARTED")
    return stuck


def free_workers(stack, fake_llm, task_ids: list[str]) -> None:
    """Stop the given tasks and answer their hung model calls until every worker lets go."""
    for task_id in task_ids:
        stack.client.post(f"/api/tasks/revoke/{task_id}", json={"terminate": True})

    def freed() -> bool:
        fake_llm.release_stalled()
        return not (set(task_ids) & stack.running())

    wait_until(freed, 15, "the workers to let go of the stuck tasks", interval=0.2)

