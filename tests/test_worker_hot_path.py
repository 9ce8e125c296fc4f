"""A worker's per-task business with Redis and the database rides with its dequeue: the task
events go in the dequeue's round trip, outcomes with the next claim (or at once when the
queue is empty), and a long task's STARTED event still leaves while it runs."""
from __future__ import annotations

import json
import threading

import redis

from jobs.events import STREAM_KEY, _Sender
from jobs.runtime import build_runtime
from jobs.settings import load_settings
from tests.support import wait_until


def _runtime(tmp_path, server, db_number: int):
    url = server.url.rsplit("/", 1)[0] + f"/{db_number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    rt = build_runtime(load_settings(data_dir=tmp_path, redis_url=url), worker_kind="process")
    rt.executor.start_in_worker()
    return rt, client


def _events(client) -> dict[str, list[tuple[int, str]]]:
    """{task id: [(version, status), ...]} in stream order."""
    seen: dict[str, list[tuple[int, str]]] = {}
    for _id, fields in client.xrange(STREAM_KEY):
        task = json.loads(fields[b"d"])["task"]
        seen.setdefault(task["task_id"], []).append((task["version"], task["status"]))
    return seen


def test_short_tasks_send_their_events_with_the_dequeues(tmp_path, private_redis, monkeypatch):
    # On a busy machine a claim's events can wait past CARRY_WAIT before the next dequeue;
    # the watchdog then (rightly) sends them itself. Here only the carrying is checked.
    monkeypatch.setattr(_Sender, "CARRY_WAIT", 60.0)
    rt, client = _runtime(tmp_path, private_redis, 1)
    try:
        records = rt.submit_many([{"type": "status_check", "owner": "ann", "params": {}}] * 20)
        client.config_resetstat()
        for _ in records:
            rt.huey.execute(rt.huey.dequeue())
        # The queue is empty now: this dequeue has the last outcome written before it waits.
        assert rt.huey.dequeue() is None
        ids = [r["task_id"] for r in records]
        wait_until(lambda: all(rt.tracker.get(t)["status"] == "SUCCESS" for t in ids), 10,
                   "every outcome to be written")
        expected = [(1, "PENDING"), (2, "STARTED"), (3, "SUCCESS")]
        wait_until(lambda: all(_events(client).get(t) == expected for t in ids), 10,
                   "every change's event, in order")
        # About one script call per dequeue (the events of a claim and the outcome before it),
        # not one per change (2 per task here). A busy machine adds some: the sender thread
        # sends what it finds before a late dequeue can take it (CI counted 30 and 31 calls
        # for 20 tasks; a quiet run 20-23), so the bound is below one call per change.
        calls = client.info("commandstats")["cmdstat_evalsha"]["calls"]
        assert calls < 2 * len(ids), calls
    finally:
        rt.executor.stop()
        rt.close()


def test_a_long_task_sends_its_started_event_while_it_runs(tmp_path, private_redis):
    rt, client = _runtime(tmp_path, private_redis, 2)
    release = threading.Event()
    rt.executor.bodies = {**rt.executor.bodies,
                          "status_check": lambda ctx: release.wait(10) and {"waited": True}}
    try:
        record = rt.submit("status_check", "ann", {})
        task_id = record["task_id"]
        run = threading.Thread(target=rt.huey.execute, args=(rt.huey.dequeue(),))
        run.start()
        try:
            # No dequeue comes while it runs: the watchdog sends the claim's event.
            wait_until(lambda: (2, "STARTED") in _events(client).get(task_id, []), 3,
                       "the STARTED event while the task runs")
            assert run.is_alive()
        finally:
            release.set()
            run.join(10)
        assert rt.huey.dequeue() is None
        wait_until(lambda: _events(client).get(task_id) == [(1, "PENDING"), (2, "STARTED"),
                                                            (3, "SUCCESS")], 10,
                   "the outcome's event")
        assert rt.tracker.get(task_id)["result"] == {"waited": True}
    finally:
        rt.executor.stop()
        rt.close()
