"""No state change without its event: changes whose publish failed, or whose process never
published them, reach the event stream once Redis answers, in order per task, once each."""
from __future__ import annotations

import json
import signal

import pytest
import redis

from jobs.db import make_engine
from jobs.events import STREAM_KEY, RedisEventBus
from jobs.models import RETRY, REVOKED, STARTED, SUCCESS, WAITING_STATUSES, utcnow
from jobs.relay import Relay
from tests.support import Proc, free_port, require, wait_until


class DurableRedis:
    """A redis-server that keeps its data across a stop (append-only file), on one port."""

    def __init__(self, folder) -> None:
        self.binary = require("redis-server", "the relay republishes into a real Redis")
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None

    def start(self) -> None:
        self.proc = Proc(f"redis-{self.port}", [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            {}, self.folder)
        client = redis.Redis(port=self.port)
        wait_until(lambda: _answers(client), 10, "redis-server to answer")
        client.close()

    def stop(self) -> None:
        self.proc.stop(signal.SIGTERM)


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.RedisError:
        return False


@pytest.fixture
def durable_redis(tmp_path):
    server = DurableRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tracker(tmp_path, durable_redis):
    from jobs.tracking import Tracker
    db = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    bus = RedisEventBus(durable_redis.url, 10_000)
    yield Tracker(db, bus)
    db.dispose()


def _stream(url: str) -> list[dict]:
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(fields[b"d"])["task"] for _, fields in client.xrange(STREAM_KEY)]
    finally:
        client.close()


def _relay_after_grace(tracker) -> Relay:
    relay = Relay(tracker)
    relay.since = utcnow()  # as a relay running since before the changes
    return relay


@pytest.fixture(autouse=True)
def no_grace(monkeypatch):
    """Changes are old enough for the relay at once (it leaves the newest to their publisher)."""
    import jobs.relay
    monkeypatch.setattr(jobs.relay, "GRACE", jobs.relay.GRACE * 0)


def test_changes_made_while_redis_is_down_arrive_after_it_returns_in_order(tracker, durable_redis):
    relay = _relay_after_grace(tracker)
    first = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)
    second = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)
    row = tracker.claim(first["task_id"], "host:1")
    assert tracker.bus.flush()

    durable_redis.stop()
    row = tracker.advance(row, STARTED, progress_done=1, progress_total=2)   # version 3
    row = tracker.advance(row, SUCCESS, result={"ok": 1}, finished_at=utcnow())  # version 4
    tracker.transition(second["task_id"], REVOKED, expect=(*WAITING_STATUSES, STARTED),
                       finished_at=utcnow())
    assert tracker.bus.flush()  # the sender tried, and gave up on, these changes
    with pytest.raises((redis.RedisError, OSError)):
        relay.pass_once()  # Redis is still down: nothing is lost, the next pass retries

    durable_redis.start()
    assert relay.pass_once() == 2
    events = _stream(durable_redis.url)
    mine = [(e["status"], e["version"]) for e in events if e["task_id"] == first["task_id"]]
    assert mine == [("PENDING", 1), ("STARTED", 2), (SUCCESS, 4)]
    theirs = [(e["status"], e["version"]) for e in events if e["task_id"] == second["task_id"]]
    assert theirs == [("PENDING", 1), (REVOKED, 2)]
    assert relay.pass_once() == 0  # sent once: a later pass finds nothing behind


def test_a_change_never_published_is_sent_by_the_relay(tracker, durable_redis, monkeypatch):
    """As when a worker dies between its commit and its publish."""
    relay = _relay_after_grace(tracker)
    task = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)
    row = tracker.claim(task["task_id"], "host:1")
    assert tracker.bus.flush()
    with monkeypatch.context() as m:
        m.setattr(tracker.bus, "publish_tasks", lambda views, **_: None)  # committed, never sent
        tracker.advance(row, SUCCESS, result=None, finished_at=utcnow())
    assert relay.pass_once() == 1
    events = [e for e in _stream(durable_redis.url) if e["task_id"] == task["task_id"]]
    assert [(e["status"], e["version"]) for e in events] == [
        ("PENDING", 1), ("STARTED", 2), (SUCCESS, 3)]


def test_a_change_that_makes_a_task_wait_has_left_before_its_message_is_queued(tracker, durable_redis):
    """A creation or a RETRY is queued as soon as the call returns and may be claimed at once
    by a worker elsewhere: were its event still waiting in this process's sender, the claim's
    (a later version) could reach Redis first, Redis would refuse it as outdated, and no board
    would see the task wait."""
    from jobs.tracking import Tracker
    task_id = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
    assert tracker.bus.sent_versions([task_id]) == [1]
    tracker.claim(task_id, "host:1")
    moved = tracker.transition(task_id, RETRY, expect=(STARTED,), attempt=1, worker=None,
                               error={"type": "lost", "message": "queued again"})
    assert tracker.bus.sent_versions([task_id]) == [moved["version"]] == [3]
    elsewhere = Tracker(tracker.db, RedisEventBus(durable_redis.url, 10_000))  # another worker
    elsewhere.claim(task_id, "host:2")
    assert elsewhere.bus.flush()
    events = [e for e in _stream(durable_redis.url) if e["task_id"] == task_id]
    assert [(e["status"], e["version"]) for e in events] == [
        ("PENDING", 1), ("STARTED", 2), (RETRY, 3), ("STARTED", 4)]


def test_a_late_publisher_cannot_roll_a_task_back(tracker, durable_redis):
    task = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)
    row = tracker.claim(task["task_id"], "host:1")
    stale = {**row}
    tracker.transition(task["task_id"], REVOKED, expect=(STARTED,), finished_at=utcnow())
    tracker._publish(stale)  # the worker's STARTED event arriving after the revoke's
    assert tracker.bus.flush()
    events = [e for e in _stream(durable_redis.url) if e["task_id"] == task["task_id"]]
    assert [e["status"] for e in events] == ["PENDING", "STARTED", REVOKED]


def test_an_open_stream_receives_a_change_whose_writer_never_published_it(fresh_stack):
    """A process that commits a change and dies before publishing it: the web process's
    relay sends it to every open stream within seconds."""
    from jobs.events import MemoryEventBus
    from jobs.tracking import Tracker
    stack = fresh_stack("redis").start()
    reader = stack.events()
    reader.wait_open()
    db = make_engine(f"sqlite:///{stack.data_dir / 'app.db'}")
    try:
        # The same database, but events that go nowhere: as if the writer died at COMMIT.
        writer = Tracker(db, MemoryEventBus(10))
        task = writer.create(task_type="status_check", owner="ann", params={}, max_attempts=3)
        writer.transition(task["task_id"], REVOKED, expect=WAITING_STATUSES, finished_at=utcnow())
        wait_until(lambda: reader.task_events(task["task_id"]), 15, "the relayed change")
    finally:
        db.dispose()
        reader.close()
    assert [(t["status"], t["version"]) for _, t in reader.task_events(task["task_id"])] == [
        (REVOKED, 2)]
