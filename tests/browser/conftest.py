"""Browser tests: the real product (tests/conftest.py's stacks) driven through the system's
Chromium by Playwright. Pages keep an event stream open, so `networkidle` never comes:
wait for content instead, always with a deadline."""
from __future__ import annotations

import pytest

from tests.support import require

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DEADLINE_MS = 15_000
MANAGER, PASSWORD = "manager@example.com", "correct horse battery"  # made by Stack.start()


def sign_in(page, base_url: str, email: str, password: str) -> None:
    response = page.goto(base_url + "/login")
    if response is not None and response.status == 404:
        return  # a build without accounts
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


# Per module, not per session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and tests elsewhere that call asyncio.run() fail beside it.
@pytest.fixture(scope="module")
def chromium():
    path = require("chromium", "the browser tests drive the system's Chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Browser:
    """Opens pages that accept confirmation dialogs and remember script errors."""

    def __init__(self, chromium) -> None:
        self._chromium = chromium
        self.contexts = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []  # the questions asked, in order
        self.accept_dialogs = True  # False: every question is answered "Cancel"

    def page(self, stack=None, *, email: str = MANAGER, password: str = PASSWORD,
             javascript: bool = True, width: int = 1280, height: int = 900):
        """A page in a browser of its own, signed in to `stack` (as its manager by default)."""
        context = self._chromium.new_context(viewport={"width": width, "height": height},
                                             java_script_enabled=javascript)
        context.set_default_timeout(DEADLINE_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.on("console", lambda message: self._console(page, message))
        page.on("dialog", self._dialog)  # hx-confirm and data-confirm ask before acting
        if stack is not None:
            sign_in(page, stack.base_url, email, password)
        return page

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        if self.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    def _console(self, page, message) -> None:
        # The Content-Security-Policy reports what it blocks on the console.
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(f"{page.url}: {message.text}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def browser(chromium):
    opened = Browser(chromium)
    yield opened
    opened.close()
    assert not opened.errors, opened.errors


@pytest.fixture
def page(browser, stack):
    return browser.page(stack)
