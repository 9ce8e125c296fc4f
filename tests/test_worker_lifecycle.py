"""Time and identity: one clock, unique worker ids, stops recorded, SIGINT like SIGTERM; and an
event reader that survives what it cannot read."""
from __future__ import annotations

import datetime as dt
import signal

import redis

from jobs.clock import Clock
from tests.support import TIMEOUT_BEYOND_THE_TEST, wait_until


def test_the_clock_is_redis_time_whatever_this_machine_says(redis_server, monkeypatch):
    import jobs.clock
    skewed = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)  # noqa: E731
    monkeypatch.setattr(jobs.clock, "utcnow", skewed)
    client = redis.Redis(port=redis_server.port)
    seconds, micros = client.time()
    shared = dt.datetime.fromtimestamp(seconds + micros / 1e6, dt.UTC)
    assert abs((Clock(client).now() - shared).total_seconds()) < 1
    assert abs((Clock(None).now() - skewed()).total_seconds()) < 1  # embedded: one process
    client.close()


def test_stopped_process_workers_are_stopped_not_lost_and_ids_are_unique(fresh_stack):
    stack = fresh_stack("redis").start()
    wait_until(lambda: stack.capacity() >= 3, 20, "three worker processes")
    first_ids = {w["id"] for w in stack._live_workers()}
    assert all(len(i.split(":")) == 3 for i in first_ids)  # host:pid:random
    assert stack.workers[0].stop(signal.SIGTERM, timeout=20) == 0
    workers = stack.client.get("/api/health").json()["task_queue_status"]["workers"]
    states = {w["id"]: w["state"] for w in workers}
    assert {states[i] for i in first_ids} == {"stopped"}
    stack.start_worker(["--workers", "1"], "again")
    wait_until(lambda: stack.capacity() >= 1, 20, "the new worker")
    assert not {w["id"] for w in stack._live_workers()} & first_ids


def test_sigint_stops_gracefully_and_a_second_signal_stops_at_once(fresh_stack):
    stack = fresh_stack("redis", SHUTDOWN_GRACE="30", **TIMEOUT_BEYOND_THE_TEST).start()
    task_id = stack.queue(platforms=["twitter", "facebook"], count_per_platform=1,
                          book={"title": "SLOW evening"})
    wait_until(lambda: stack.task(task_id)["progress"]["done"] >= 1, 20, "first post")
    assert stack.workers[0].stop(signal.SIGINT, timeout=20) == 0
    assert stack.task(task_id)["status"] == "SUCCESS"  # it was let finish

    worker = stack.start_worker(["--workers", "1"], "impatient")
    task_id = stack.queue(platforms=["twitter", "facebook", "threads", "mastodon"],
                          count_per_platform=2, book={"title": "SLOW night"})
    wait_until(lambda: stack.task(task_id)["progress"]["done"] >= 1, 20, "first post")
    worker.popen.send_signal(signal.SIGINT)
    # Graceful: the task goes on writing after the first signal...
    wait_until(lambda: stack.task(task_id)["progress"]["done"] >= 3, 20, "more posts")
    assert worker.alive()
    worker.popen.send_signal(signal.SIGTERM)  # ...and the second stops it at once
    worker.popen.wait(10)  # well before SHUTDOWN_GRACE
    wait_until(lambda: stack.task(task_id)["status"] == "RETRY", 10, "the task handed back")


def test_event_reader_survives_an_entry_it_cannot_read(fresh_stack):
    stack = fresh_stack("redis").start()
    reader = stack.events()
    wait_until(lambda: reader.comments or reader.events, 10, "the stream")
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    client.xadd("bma:events", {"e": "x", "d": "{not json"})
    wait_until(lambda: any(kind == "resync" for _, kind, _ in reader.events), 10, "a resync")
    assert stack.web.log().count("event reader failed") == 1
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1)
    wait_until(lambda: any(t["status"] == "SUCCESS" for _, t in reader.task_events(task_id)), 20,
               "live events again")
    health = stack.client.get("/api/health").json()
    assert not any("live events" in p for p in health["problems"])
    reader.close()
    client.close()
