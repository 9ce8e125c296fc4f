"""Moving-window rate limits (webapp/limits.py): at most `limit` attempts in ANY window, on a
real redis-server and in the per-process fallback; a hand-back removes exactly its own
attempt; refused attempts are not recorded; the fallback holds while Redis is down."""
from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
import redis

from tests.support import RedisServer, wait_until
from webapp.limits import PREFIX, RateLimiter

PASSWORD = "correct horse battery"


@pytest.fixture(params=["redis", "local"])
def limiter(request):
    """A limiter sharing its counts through its own database of the run's redis-server, or
    the per-process one that holds while Redis is away."""
    if request.param == "local":
        yield RateLimiter(None)
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_server").new_database())
    yield RateLimiter(client)
    client.close()


def _hit(limiter: RateLimiter, key: str, limit: int, window: float):
    return asyncio.run(limiter.hit(key, limit, window))


def _just_before_a_boundary(window: int) -> float:
    """Wait (with a deadline) until a fixed window of `window` seconds is about to end."""
    return wait_until(lambda: time.time() % window > window - 0.3 and time.time(), window + 2,
                      f"the last 0.3 s of a {window} s fixed window", interval=0.005)


def _after_the_boundary(started: float, window: int) -> None:
    wait_until(lambda: time.time() // window > started // window, window + 2,
               "the fixed window's boundary to pass", interval=0.005)


def test_no_more_than_the_limit_in_any_window_across_a_boundary(limiter):
    # A fixed window lets `limit` attempts through at the end of one window and `limit` more
    # at the start of the next; a moving one refuses until the first have aged out.
    started = _just_before_a_boundary(2)
    hits = [_hit(limiter, "edge", 3, 2) for _ in range(3)]
    assert not any(h.refused for h in hits)
    _after_the_boundary(started, 2)
    refused = _hit(limiter, "edge", 3, 2)
    assert time.time() - started < 2, "too slow to test the boundary"
    assert refused.refused and 1 <= refused.retry_after <= 2


def test_refused_attempts_are_not_recorded(limiter):
    # Hammering a full key keeps it shut for one window after its first counted attempt,
    # never longer: the hammering itself is not counted.
    first = time.monotonic()
    assert not _hit(limiter, "hammered", 2, 2).refused and not _hit(limiter, "hammered", 2, 2).refused
    wait_until(lambda: not _hit(limiter, "hammered", 2, 2).refused, 5,
               "an attempt to be counted again while hammering", interval=0.01)
    assert 1.9 < time.monotonic() - first < 4


def test_forgive_hands_back_only_its_own_attempt(limiter):
    first, second = _hit(limiter, "mine", 3, 60), _hit(limiter, "mine", 3, 60)
    asyncio.run(limiter.forgive(first))
    asyncio.run(limiter.forgive(first))  # twice: nothing more is taken back
    third, fourth = _hit(limiter, "mine", 3, 60), _hit(limiter, "mine", 3, 60)
    assert not third.refused and not fourth.refused
    refused = _hit(limiter, "mine", 3, 60)  # second, third and fourth are counted
    assert refused.refused and 59 <= refused.retry_after <= 60
    asyncio.run(limiter.forgive(refused))  # counted nothing, so hands back nothing
    assert _hit(limiter, "mine", 3, 60).refused
    asyncio.run(limiter.forgive(third))
    assert not _hit(limiter, "mine", 3, 60).refused and _hit(limiter, "mine", 3, 60).refused
    if limiter._redis is not None:
        members = limiter._redis.zrange(PREFIX + "mine", 0, -1)
        assert second.ticket.encode() in members and third.ticket.encode() not in members
        assert len(members) == 3 and limiter._redis.pttl(PREFIX + "mine") > 0


def test_hit_all_counts_against_every_key_or_none(limiter):
    assert not _hit(limiter, "account", 1, 60).refused
    hits = asyncio.run(limiter.hit_all([("account", 1), ("address", 5)], 60))
    assert [h.refused for h in hits] == [True, False]
    # The address's hit was handed back: five more fit.
    assert not any(_hit(limiter, "address", 5, 60).refused for _ in range(5))


def test_the_shared_window_runs_on_the_redis_clock(redis_server, monkeypatch):
    client = redis.Redis.from_url(redis_server.new_database())
    limiter = RateLimiter(client)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # this host's clock is an hour ahead
    assert not _hit(limiter, "skewed", 1, 60).refused
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # another's an hour behind
    refused = _hit(limiter, "skewed", 1, 60)
    assert refused.refused and 59 <= refused.retry_after <= 60
    (_, score), = client.zrange(PREFIX + "skewed", 0, -1, withscores=True)
    assert abs(score - real()) < 5
    client.close()


def test_limits_hold_per_process_while_redis_is_down(tmp_path, caplog):
    server = RedisServer(tmp_path)
    client = redis.Redis(port=server.port, socket_timeout=1, socket_connect_timeout=1)
    limiter = RateLimiter(client)
    try:
        shared = _hit(limiter, "outage", 2, 60)
        assert shared.shared and not shared.refused
        server.stop()
        with caplog.at_level(logging.INFO, logger="webapp.limits"):
            local = [_hit(limiter, "outage", 2, 60) for _ in range(5)]
            asyncio.run(limiter.forgive(shared))  # cannot reach Redis: stays counted there
            assert [h.refused for h in local] == [False, False, True, True, True]
            assert not any(h.shared for h in local)
            asyncio.run(limiter.forgive(local[0]))
            assert not _hit(limiter, "outage", 2, 60).refused
            server.start()  # empty: nothing is saved
            again = [_hit(limiter, "outage", 2, 60) for _ in range(3)]
            assert [(h.shared, h.refused) for h in again] == [(True, False), (True, False), (True, True)]
        records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "webapp.limits"]
        assert [level for level, _ in records] == [logging.WARNING, logging.INFO], records
    finally:
        client.close()
        server.stop()


def test_local_fallback_forgets_keys_whose_attempts_aged_out():
    limiter = RateLimiter(None)
    for n in range(10_001):
        limiter._hit(f"k{n}", 1, 0.01)  # without an event loop per call: 10,000 of them
    aged = time.monotonic() + 0.02
    wait_until(lambda: time.monotonic() > aged, 2, "those attempts to age out")
    limiter._hit("late", 1, 60)
    assert set(limiter._local) == {"late"}


@pytest.mark.parametrize("kind", ["redis", "embedded"])
def test_sign_in_stays_throttled_across_a_fixed_window_boundary(fresh_stack, kind):
    """The CI failure: 3 wrong passwords at the end of one fixed window, then the right one
    at the start of the next got 302 instead of 429."""
    stack = fresh_stack(kind, LOGIN_ATTEMPTS_PER_ACCOUNT="3", LOGIN_WINDOW="6").start()
    stack.create_user("edge@example.com", "author")
    browser = httpx.Client(base_url=stack.base_url, timeout=20)

    def login(password: str) -> httpx.Response:
        return browser.post("/login", data={"email": "edge@example.com", "password": password})

    # A 6 s window leaves room for four password checks on a loaded machine.
    started = wait_until(lambda: time.time() % 6 > 5.3 and time.time(), 8,
                         "the last 0.7 s of a 6 s fixed window", interval=0.005)
    assert [login("not the password").status_code for _ in range(3)] == [401] * 3
    _after_the_boundary(started, 6)
    throttled = login(PASSWORD)
    assert time.time() - started < 6, "too slow to test the boundary"
    assert throttled.status_code == 429 and 1 <= int(throttled.headers["retry-after"]) <= 6
    browser.close()


def test_a_refused_batch_costs_no_place_in_the_generation_limit(fresh_stack):
    stack = fresh_stack("embedded", GENERATION_RATE_LIMIT="3").start()
    generation = {"type": "content_generation",
                  "params": {"platforms": ["twitter"], "book": {"title": "Tides"}}}
    response = stack.client.post("/api/tasks/batch", json={"tasks": [generation] * 4})
    assert response.status_code == 429 and response.json()["error"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1 and "task 3" in response.json()["message"]
    codes = [stack.client.post("/api/generate-posts", json={"platforms": ["twitter"]}).status_code
             for _ in range(4)]
    assert codes == [200, 200, 200, 429]
