"""Destructive buttons ask first, with scripts off (a confirmation page served by the
server) and on (a dialog; once accepted the action is done without a second question).
Mode-independent: the embedded stack only."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)

PASSWORD = "a long password"


def _user(stack, email: str) -> dict:
    return next(u for u in stack.client.get("/api/users").json()["users"] if u["email"] == email)


def _row(page, stack, email: str):
    return page.locator(f"#user-{_user(stack, email)['id']}")


def _confirmation(page, question: str):
    """The server's confirmation page: the question, a yes button and a way back."""
    expect(page.locator("article.confirm h1")).to_have_text(re.compile(question))
    return page.locator("article.confirm")


def test_users_page_asks_without_javascript(stack, browser):
    email = f"nojs.target.{stack.name}@example.com"
    stack.add_user(email, "author", PASSWORD)
    page = browser.page(stack, javascript=False)
    page.goto(stack.base_url + "/users")

    _row(page, stack, email).get_by_role("button", name="Disable").click()
    _confirmation(page, f"Disable {re.escape(email)}")
    assert not _user(stack, email)["disabled"]  # asking changed nothing
    page.get_by_role("button", name="Yes, disable them").click()
    expect(page.locator(".notice")).to_have_text(f"{email} is disabled.")
    assert _user(stack, email)["disabled"]
    _row(page, stack, email).get_by_role("button", name="Re-enable").click()  # undoes: no question
    expect(page.locator(".notice")).to_have_text(f"{email} is enabled.")

    row = _row(page, stack, email)
    row.locator("select[name=role]").select_option("viewer")
    row.get_by_role("button", name="Change role").click()
    confirm = _confirmation(page, f"Make {re.escape(email)} viewer")
    confirm.get_by_role("button", name="Cancel").click()
    page.wait_for_url(stack.base_url + "/users")
    assert _user(stack, email)["role"] == "author"
    row = _row(page, stack, email)
    row.locator("select[name=role]").select_option("viewer")
    row.get_by_role("button", name="Change role").click()
    page.get_by_role("button", name="Yes, make them viewer").click()
    expect(page.locator(".notice")).to_have_text(f"{email} is now viewer.")

    row = _row(page, stack, email)
    row.locator("input[name=password]").fill("a brand new password")
    row.get_by_role("button", name="Reset password").click()
    _confirmation(page, "Reset the password")
    page.get_by_role("button", name="Yes, reset it").click()
    expect(page.locator("#new-password")).to_contain_text("a brand new password")
    assert not browser.dialogs


def test_other_destructive_buttons_ask_without_javascript(stack, browser):
    email = f"nojs.author.{stack.name}@example.com"
    stack.add_user(email, "author", PASSWORD)
    page = browser.page(stack, email=email, password=PASSWORD, javascript=False)
    base = stack.base_url

    page.goto(base + "/books")
    page.fill("input[name=title]", "Paper Lanterns")
    page.get_by_role("button", name="Add the book").click()
    page.get_by_role("button", name="Delete this book").click()
    _confirmation(page, "Delete “Paper Lanterns”")
    page.get_by_role("button", name="Yes, delete the book").click()
    page.wait_for_url(base + "/books")
    expect(page.get_by_text("Paper Lanterns")).to_have_count(0)

    page.goto(base + "/account")
    page.get_by_role("button", name="Create a token").click()
    page.get_by_role("button", name="Revoke").first.click()
    _confirmation(page, "Revoke this token")
    page.get_by_role("button", name="Yes, revoke it").click()
    expect(page.locator("table").first).to_contain_text("revoked")

    page.get_by_role("button", name="Make a new address").click()
    _confirmation(page, "Make a new calendar address")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Sign out everywhere").click()
    _confirmation(page, "Sign out of every browser")
    page.get_by_role("button", name="Yes, sign out everywhere").click()
    page.wait_for_url(re.compile(r"/login"))

    manager = browser.page(stack, javascript=False)
    manager.goto(base + "/")
    manager.locator("button[data-action=pause-all]").click()
    _confirmation(manager, "Pause the queue")
    assert not stack.client.get("/api/health").json()["task_queue_status"]["paused"]
    manager.get_by_role("button", name="Yes, pause").click()
    try:
        expect(manager.locator("#pause-panel [data-queue-state]")).to_have_attribute(
            "data-queue-state", "paused")
    finally:
        assert stack.client.post("/api/queue/resume", json={}).status_code == 200
    assert not browser.dialogs


def test_destructive_buttons_ask_in_a_dialog_with_javascript(stack, browser):
    email = f"js.target.{stack.name}@example.com"
    stack.add_user(email, "author", PASSWORD)
    page = browser.page(stack)
    page.goto(stack.base_url + "/users")

    browser.accept_dialogs = False  # "Cancel": nothing is sent
    _row(page, stack, email).get_by_role("button", name="Disable").click()
    assert browser.dialogs == [f"Disable {email}? Their sessions end and their API tokens stop "
                               "working until you re-enable them."]
    expect(page.locator(".notice")).to_have_count(0)
    assert not _user(stack, email)["disabled"]

    browser.accept_dialogs = True  # "OK": done at once, no second question from the server
    _row(page, stack, email).get_by_role("button", name="Disable").click()
    expect(page.locator(".notice")).to_have_text(f"{email} is disabled.")
    assert _user(stack, email)["disabled"] and len(browser.dialogs) == 2
    row = _row(page, stack, email)
    row.locator("select[name=role]").select_option("viewer")
    row.get_by_role("button", name="Change role").click()
    expect(page.locator(".notice")).to_have_text(f"{email} is now viewer.")
    _row(page, stack, email).get_by_role("button", name="Reset password").click()
    expect(page.locator("#new-password")).to_contain_text("not shown again")
    assert [q.split("?")[0] for q in browser.dialogs[2:]] == [
        f"Change the role of {email}", f"Reset the password of {email}"]

    author = f"js.author.{stack.name}@example.com"
    stack.add_user(author, "author", PASSWORD)
    mine = browser.page(stack, email=author, password=PASSWORD)
    mine.goto(stack.base_url + "/books")
    mine.fill("input[name=title]", "Glass Orchard")
    mine.get_by_role("button", name="Add the book").click()
    mine.get_by_role("button", name="Delete this book").click()
    mine.wait_for_url(stack.base_url + "/books")
    expect(mine.get_by_text("Glass Orchard")).to_have_count(0)
    mine.goto(stack.base_url + "/account")
    mine.get_by_role("button", name="Create a token").click()
    mine.get_by_role("button", name="Revoke").first.click()
    expect(mine.locator("table").first).to_contain_text("revoked")
    assert browser.dialogs[4].startswith("Delete “Glass Orchard”?")
    assert browser.dialogs[5].startswith("Revoke the token") and len(browser.dialogs) == 6
