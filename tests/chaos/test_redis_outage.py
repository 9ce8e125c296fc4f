"""Redis stopped under open streams and running tasks: clear 503s, no 500, no stale board."""
from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.chaos.conftest import LONG
from tests.chaos.helpers import (CHAOS_ENV, Database, PersistentRedis, ResumingStream,
                                 figures_for, start_worker, wait_all_final)
from tests.support import RedisServer, wait_until

OUTAGE = 10.0 if LONG else 4.0


@pytest.mark.parametrize("how", ["sigterm-aof", "sigkill-no-persistence"])
def test_redis_outage_under_open_streams(fresh_stack, artifacts, request, figures, how):
    own = (PersistentRedis if how == "sigterm-aof" else RedisServer)(artifacts)
    request.addfinalizer(own.stop)
    stack = fresh_stack("redis", REDIS_URL=own.url, **CHAOS_ENV)
    stack.worker_args = []
    stack.start()
    start_worker(stack, "outage-w0", 2)
    start_worker(stack, "outage-w1", 2)
    wait_until(lambda: stack.capacity() >= 4, 30, "four worker processes")
    streams = [ResumingStream(stack.base_url, stack.token) for _ in range(5 if LONG else 3)]
    wait_until(lambda: all(s.connections for s in streams), 10, "streams to open")

    answers: list[int] = []
    unanswered: list[str] = []  # requests that got no answer: they may have made a task
    queued: list[str] = []
    slow_answers: list[float] = []
    stop_traffic = threading.Event()

    def traffic() -> None:
        """Automation that keeps queueing work, outage or not."""
        with stack.client_for(stack.token) as client:
            i = 0
            while not stop_traffic.is_set():
                i += 1
                began = time.monotonic()
                try:
                    if i % 2:
                        r = client.post("/api/generate-posts", json={
                            "async": True, "platforms": ["twitter"], "count_per_platform": 1,
                            "book": {"title": f"SLOW squall {i}"}})
                    else:
                        r = client.post("/api/status-check", json={})
                except httpx.HTTPError as exc:
                    unanswered.append(repr(exc))
                    continue
                answers.append(r.status_code)
                if r.status_code == 202:
                    queued.append(r.json()["task_id"])
                elif r.status_code == 503:
                    slow_answers.append(time.monotonic() - began)
                    assert r.json()["error"] == "queue_unavailable"
                    assert int(r.headers["Retry-After"]) > 0
                stop_traffic.wait(0.1)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    wait_until(lambda: len(queued) >= 10, 20, "tasks queued before the outage")
    # Tasks that finish while Redis is down: their events cannot be published then.
    running = [stack.queue(platforms=["twitter", "facebook", "threads"], count_per_platform=1,
                           book={"title": f"SLOW storm {i}"}) for i in range(3)]
    wait_until(lambda: all(stack.task(t)["status"] == "STARTED" for t in running), 20,
               "long tasks running")

    own.proc.stop(signal.SIGTERM if how == "sigterm-aof" else signal.SIGKILL)
    down_at = time.monotonic()
    health = wait_until(lambda: (h := stack.client.get("/api/health").json())["status"] == "degraded"
                        and h, 5, "health to say degraded")
    assert any("queue unreachable" in p for p in health["problems"])
    assert stack.client.get(f"/api/task-status/{queued[0]}").status_code == 200
    comments_before = [s.comments for s in streams]
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))  # the outage itself, not a wait for a condition
    # Streams stayed open through the outage: keep-alives kept coming on the same connection.
    assert all(s.comments > c for s, c in zip(streams, comments_before))
    assert all(s.connections == 1 or s.resyncs for s in streams)
    own.start()
    recovered_at = time.monotonic()
    wait_until(lambda: answers[-5:].count(202) >= 2, 15, "the queue to take tasks again")
    time_to_queue = time.monotonic() - recovered_at
    stop_traffic.set()
    thread.join()

    db = Database(stack)
    wait_all_final(db, timeout=120 if LONG else 60)
    # No stale board: each stream shows every task's final state, or was told to resync
    # after the last change it saw of it.
    statuses = db.statuses()
    wait_until(lambda: all(_fresh(s, statuses) for s in streams), 15, "streams to be current")
    result = figures_for(db)
    figures(how=how, outage_s=OUTAGE, **result, answers_503=answers.count(503),
            answers_5xx_other=sum(1 for a in answers if a >= 500 and a != 503),
            max_503_seconds=round(max(slow_answers, default=0), 3),
            seconds_to_queue_after_recovery=round(time_to_queue, 2),
            resyncs=sum(len(s.resyncs) for s in streams))
    for s in streams:
        s.close()
    assert all(a in (202, 503) for a in answers), sorted(set(answers))
    assert answers.count(503) > 0
    assert max(slow_answers) < 1.0
    assert result["lost"] == 0 and result["duplicated"] == 0
    # The request that found Redis gone had recorded its task: it was taken back with the
    # 503 (later ones are refused before anything is recorded). No FAILURE ghost, and every
    # task that exists was answered 202.
    assert db.failure_types() == [] and result["failed"] == 0, db.failure_types()
    assert stack.client.get("/api/tasks", params={"status": "FAILURE"}).json()["tasks"] == []
    assert len(set(statuses) - set(queued) - set(running)) <= len(unanswered), unanswered
    # Quiet logs: one line when Redis went, one when it came back; no tracebacks.
    for proc in [stack.web, *stack.workers]:
        log = proc.log()
        assert "Traceback" not in log, f"{proc.name}:\n{log[-3000:]}"
        assert log.count("Redis unreachable") <= 1 + log.count("Redis reachable again"), proc.name
    assert "internal_error" not in stack.web.log()
    db.close()
    # Replay works on the first request after recovery.
    last_id = next(s.last_id for s in streams if s.last_id)
    with stack.client_for(stack.token) as client, client.stream(
            "GET", "/api/events", headers={"Last-Event-ID": last_id}) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith(("event:", ":")))
        assert first.startswith(":") or first.startswith("event:")


def _fresh(stream: ResumingStream, statuses: dict[str, str]) -> bool:
    """Every task shows its final status, or the stream said resync after its last event."""
    seen = stream.last_status()
    last_resync = stream.resyncs[-1] if stream.resyncs else -1
    return all(seen.get(task_id, (-1, None))[1] == status or seen.get(task_id, (-1, None))[0] < last_resync
               for task_id, status in statuses.items())
