"""The health panel says which queue backend serves, and raises a warning when Redis stops."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.helpers import open_live
from tests.support import RedisServer


def test_health_panel_warns_when_redis_stops_and_recovers(fresh_stack, browser, artifacts, request):
    own_redis = RedisServer(artifacts)
    request.addfinalizer(own_redis.stop)
    stack = fresh_stack("redis", REDIS_URL=own_redis.url).start()
    board = open_live(browser.page(stack), stack.base_url + "/")
    panel = board.locator("#health-panel")
    expect(panel).to_contain_text("Redis · reachable")
    expect(panel.locator(".rtt")).to_have_text(re.compile(r"^[\d.]+ ms$"))
    expect(panel).to_have_attribute("data-health-status", "healthy")

    own_redis.stop()
    # Pages and task status still work from the database: degraded, with the reason.
    expect(panel).to_have_attribute("data-health-status", "degraded", timeout=15_000)
    expect(panel.locator(".health-word")).to_have_text("DEGRADED")
    expect(panel).to_contain_text("Redis unreachable")
    expect(panel.locator(".problems")).to_contain_text("queue unreachable")
    expect(board.locator("#live")).to_have_attribute("data-state", "live")  # the page stays live

    own_redis.start()
    expect(panel).to_have_attribute("data-health-status", "healthy", timeout=20_000)
    expect(panel).to_contain_text("Redis · reachable")
