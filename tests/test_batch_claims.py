"""A worker running short tasks takes several queued messages at once and claims their
records in one transaction (jobs/queue.py's QueueStorage, Executor.batch_plan): one commit
for a batch instead of one per task. What must hold all the same: every task runs once,
with its timeline; the queue's order is kept; a revoked task claimed ahead does not run; a
worker that stops or is drained gives back what it holds."""
from __future__ import annotations

import itertools
import threading

import pytest
import redis

from jobs.execution import BATCH_MAX
from jobs.runtime import build_runtime
from jobs.settings import load_settings
from tests.support import wait_until


_DATABASES = itertools.count(921)  # a Redis database per runtime of this module


@pytest.fixture
def runtime(tmp_path, redis_server):
    """A factory of worker runtimes (Redis mode, the executor set up as in a worker process)
    on this test's data folder, stopped and closed at the end. `ran` collects the ids of the
    status checks run; `like` shares another runtime's Redis database (a second worker)."""
    made = []

    def make(ran: list[str] | None = None, like=None, kind: str = "process"):
        url = like.settings.redis_url if like is not None else (
            redis_server.url.rsplit("/", 1)[0] + f"/{next(_DATABASES)}")
        if like is None:
            redis.Redis.from_url(url).flushdb()
        rt = build_runtime(load_settings(data_dir=tmp_path, redis_url=url), worker_kind=kind)
        if ran is not None:
            rt.executor.bodies = {**rt.executor.bodies, "status_check":
                                  lambda ctx: ran.append(ctx.task_id) or {"ok": True}}
        rt.executor.start_in_worker()
        made.append(rt)
        return rt
    yield make
    for rt in made:
        rt.executor.stop()
        rt.close()


def _warm(rt) -> None:
    """Run one status check, so the worker knows the type runs short (it batches only then)."""
    record = rt.submit("status_check", "ann", {})
    rt.huey.execute(rt.huey.dequeue())
    assert rt.executor.batch_plan()[1] == {"status_check"}
    rt.tracker.flush_outcomes()
    assert rt.tracker.get(record["task_id"])["status"] == "SUCCESS"


def _queue(rt, n: int, **spec) -> list[str]:
    spec = {"type": "status_check", "owner": "ann", "params": {}, **spec}
    return [r["task_id"] for r in rt.submit_many([spec] * n)]


def _statuses(rt, ids) -> dict[str, str]:
    return {task_id: rt.tracker.get(task_id)["status"] for task_id in ids}


def test_short_tasks_are_claimed_in_batches_each_run_once(runtime):
    ran: list[str] = []
    rt = runtime(ran)
    _warm(rt)
    ids = _queue(rt, 40)
    for _ in ids:
        rt.huey.execute(rt.huey.dequeue())
    rt.tracker.flush_outcomes()
    assert _statuses(rt, ids) == {task_id: "SUCCESS" for task_id in ids}
    assert ran[1:] == ids  # each once, in the order they were queued
    for task_id in ids:
        assert [t["status"] for t in rt.tracker.timeline(task_id)] == ["PENDING", "STARTED", "SUCCESS"]
        assert rt.tracker.get(task_id)["attempts"] == 1
    # A batch is claimed in one transaction: its records share the claim's time.
    started = {rt.tracker.get(task_id)["started_at"] for task_id in ids}
    assert len(started) <= 2 * -(-len(ids) // BATCH_MAX), len(started)


def test_a_batch_stops_at_a_type_not_known_to_run_short_and_keeps_the_queue_order(runtime):
    rt = runtime([])
    _warm(rt)
    specs = [{"type": "status_check", "owner": "ann", "params": {}}] * 2 + [
        {"type": "post_approval", "owner": "ann", "params": {"post_ids": [1]}},
        {"type": "status_check", "owner": "ann", "params": {}}]
    ids = [r["task_id"] for r in rt.submit_many(specs)]  # all interactive: queued in order
    assert rt.huey.dequeue().id == ids[0]
    assert rt.huey.storage.upcoming() == [(ids[1], "status_check")]
    assert rt.huey.pending_count() == 2  # the approval and what follows it, back in place
    assert [rt.huey.dequeue().id for _ in range(3)] == ids[1:]


def test_nothing_waits_behind_a_task_not_known_to_run_short(runtime):
    rt = runtime([])
    _warm(rt)
    ids = _queue(rt, 1, type="post_approval", params={"post_ids": [1]}) + _queue(rt, 3)
    assert rt.huey.dequeue().id == ids[0]
    assert rt.huey.storage.upcoming() == []
    assert rt.huey.pending_count() == 3  # for any worker


def _claim_a_batch(rt, n: int) -> tuple[list[str], list]:
    """Queue n status checks and run the first: its claim takes the rest ahead. Returns
    their ids and the messages of those claimed ahead, taken from the worker's buffer."""
    ids = _queue(rt, n)
    rt.huey.execute(rt.huey.dequeue())
    assert _statuses(rt, ids[1:]) == {task_id: "STARTED" for task_id in ids[1:]}
    return ids, [rt.huey.dequeue() for _ in ids[1:]]


def test_a_stopping_worker_gives_back_the_tasks_it_claimed_ahead(runtime):
    rt = runtime([])
    _warm(rt)
    ids, _messages = _claim_a_batch(rt, 6)
    rt.executor.stop()
    for task_id in ids[1:]:
        record = rt.tracker.get(task_id)
        assert record["status"] == "RETRY", record
        assert record["attempts"] == 0
        assert record["error"]["message"] == "its worker stopped before running it; queued again"
    ran: list[str] = []
    other = runtime(ran, like=rt)  # another worker runs them
    while (message := other.huey.dequeue()) is not None:
        other.huey.execute(message)
    other.tracker.flush_outcomes()
    assert sorted(ran) == sorted(ids[1:])
    assert _statuses(rt, ids) == {task_id: "SUCCESS" for task_id in ids}


def test_a_stopping_worker_puts_its_buffered_messages_back(runtime):
    rt = runtime([])
    _warm(rt)
    ids = _queue(rt, 5)
    assert rt.huey.dequeue().id == ids[0]  # taken with four more, not yet claimed
    assert rt.huey.pending_count() == 0
    assert rt.huey.storage.return_buffered() == 4
    assert sorted(rt.queued_ids()) == sorted(ids[1:])
    assert [rt.huey.dequeue().id for _ in range(4)] == ids[1:]  # in their order


def test_a_task_revoked_after_its_batch_was_claimed_does_not_run(runtime):
    ran: list[str] = []
    rt = runtime(ran)
    _warm(rt)
    ids = _queue(rt, 4)
    rt.huey.execute(rt.huey.dequeue())
    rt.revoke(ids[2], terminate=False)
    rt.executor._follow_records()  # the watchdog's look at the records it holds
    for _ in ids[1:]:
        rt.huey.execute(rt.huey.dequeue())
    rt.tracker.flush_outcomes()
    assert ids[2] not in ran
    assert _statuses(rt, ids) == {ids[0]: "SUCCESS", ids[1]: "SUCCESS", ids[2]: "REVOKED",
                                  ids[3]: "SUCCESS"}


def test_a_drained_worker_hands_back_a_task_it_claimed_ahead(runtime):
    rt = runtime([])
    _warm(rt)
    ids, messages = _claim_a_batch(rt, 3)
    rt.executor.stopping = lambda: True  # refuses new work, as when drained
    for message in messages:
        rt.huey.execute(message)
    assert _statuses(rt, ids[1:]) == {task_id: "RETRY" for task_id in ids[1:]}
    assert set(ids[1:]) <= rt.queued_ids()
    assert not rt.executor.running_ids()


def test_thread_workers_each_batch_from_their_own_buffer(runtime):
    ran: list[str] = []
    rt = runtime(ran, kind="thread")
    _warm(rt)
    ids = _queue(rt, 200)

    def work() -> None:
        storage = rt.huey.storage
        while rt.huey.pending_count() or storage.upcoming():
            message = storage.dequeue()  # may find the queue emptied by another thread
            if message is not None:
                rt.huey.execute(rt.huey.deserialize_task(message))
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    rt.tracker.flush_outcomes()
    assert sorted(ran[1:]) == sorted(ids)  # each once, whichever thread took it
    wait_until(lambda: set(_statuses(rt, ids).values()) == {"SUCCESS"}, 10, "every outcome")
    started = {rt.tracker.get(task_id)["started_at"] for task_id in ids}
    assert len(started) < len(ids) / 4, len(started)  # in batches
