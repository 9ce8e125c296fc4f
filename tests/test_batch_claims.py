"""A worker running short tasks takes several queued messages at once and claims their
records in one transaction (jobs/queue.py's QueueStorage, Executor.batch_plan): one commit
for a batch instead of one per task. What must hold all the same: every task runs once,
with its timeline; the queue's order is kept; a revoked task claimed ahead does not run; a
worker that stops or is drained gives back what it holds."""
from __future__ import annotations

import redis

from jobs.execution import BATCH_MAX
from jobs.runtime import build_runtime
from jobs.settings import load_settings
from tests.support import wait_until


def _runtime(tmp_path, redis_server, db_number: int, ran: list[str] | None = None,
             fresh: bool = True):
    url = redis_server.url.rsplit("/", 1)[0] + f"/{db_number}"
    if fresh:
        redis.Redis.from_url(url).flushdb()
    rt = build_runtime(load_settings(data_dir=tmp_path, redis_url=url), worker_kind="process")
    if ran is not None:
        rt.executor.bodies = {**rt.executor.bodies,
                              "status_check": lambda ctx: ran.append(ctx.task_id) or {"ok": True}}
    rt.executor.start_in_worker()
    return rt


def _warm(rt) -> None:
    """Run one status check, so the worker knows the type runs short (it batches only then)."""
    record = rt.submit("status_check", "ann", {})
    rt.huey.execute(rt.huey.dequeue())
    assert rt.executor.batch_plan()[1] == {"status_check"}
    rt.tracker.flush_outcomes()
    assert rt.tracker.get(record["task_id"])["status"] == "SUCCESS"


def _statuses(rt, ids) -> dict[str, str]:
    return {task_id: rt.tracker.get(task_id)["status"] for task_id in ids}


def _timeline(rt, task_id: str) -> list[str]:
    from sqlalchemy import select

    from jobs.models import task_history
    with rt.db.connect() as conn:
        return list(conn.execute(select(task_history.c.status).where(task_history.c.task_id == task_id)
                                 .order_by(task_history.c.id)).scalars())


def test_short_tasks_are_claimed_in_batches_each_run_once(tmp_path, redis_server):
    ran: list[str] = []
    rt = _runtime(tmp_path, redis_server, 921, ran)
    try:
        _warm(rt)
        ids = [r["task_id"] for r in rt.submit_many([{"type": "status_check", "owner": "ann",
                                                      "params": {}}] * 40)]
        for _ in ids:
            rt.huey.execute(rt.huey.dequeue())
        rt.tracker.flush_outcomes()
        assert _statuses(rt, ids) == {task_id: "SUCCESS" for task_id in ids}
        assert sorted(ran[1:]) == sorted(ids)  # each once
        assert ran[1:] == ids  # in the order they were queued
        for task_id in ids:
            assert _timeline(rt, task_id) == ["PENDING", "STARTED", "SUCCESS"]
            assert rt.tracker.get(task_id)["attempts"] == 1
        # A batch is claimed in one transaction: its records share the claim's time.
        started = {rt.tracker.get(task_id)["started_at"] for task_id in ids}
        assert len(started) <= 2 * -(-len(ids) // BATCH_MAX), len(started)
    finally:
        rt.executor.stop()
        rt.close()


def test_a_batch_stops_at_a_type_not_known_to_run_short_and_keeps_the_queue_order(tmp_path, redis_server):
    rt = _runtime(tmp_path, redis_server, 922, [])
    try:
        _warm(rt)
        specs = [{"type": "status_check", "owner": "ann", "params": {}}] * 2 + [
            {"type": "post_approval", "owner": "ann", "params": {"post_ids": [1]}},
            {"type": "status_check", "owner": "ann", "params": {}}]
        ids = [r["task_id"] for r in rt.submit_many(specs)]  # all interactive: queued in order
        first = rt.huey.dequeue()
        assert first.id == ids[0]
        assert rt.huey.storage.upcoming() == [(ids[1], "status_check")]
        assert rt.huey.pending_count() == 2  # the approval and what follows it, back in place
        assert [rt.huey.dequeue().id for _ in range(3)] == ids[1:]
    finally:
        rt.executor.stop()
        rt.close()


def _claim_a_batch(rt, n: int) -> tuple[list[str], list]:
    """Queue n status checks and run the first: its claim takes the rest ahead."""
    ids = [r["task_id"] for r in rt.submit_many([{"type": "status_check", "owner": "ann",
                                                  "params": {}}] * n)]
    rt.huey.execute(rt.huey.dequeue())
    assert _statuses(rt, ids[1:]) == {task_id: "STARTED" for task_id in ids[1:]}
    return ids, [rt.huey.dequeue() for _ in ids[1:]]


def test_a_stopping_worker_gives_back_the_tasks_it_claimed_ahead(tmp_path, redis_server):
    rt = _runtime(tmp_path, redis_server, 923, [])
    other = None
    try:
        _warm(rt)
        ids, _held = _claim_a_batch(rt, 6)
        rt.executor.stop()
        for task_id in ids[1:]:
            record = rt.tracker.get(task_id)
            assert record["status"] == "RETRY", record
            assert record["attempts"] == 0
            assert record["error"]["message"] == "its worker stopped before running it; queued again"
        # Another worker runs them.
        ran: list[str] = []
        other = _runtime(tmp_path, redis_server, 923, ran, fresh=False)
        while (message := other.huey.dequeue()) is not None:
            other.huey.execute(message)
        other.tracker.flush_outcomes()
        assert sorted(ran) == sorted(ids[1:])
        assert _statuses(rt, ids) == {task_id: "SUCCESS" for task_id in ids}
    finally:
        rt.close()
        if other is not None:
            other.executor.stop()
            other.close()


def test_a_stopping_worker_puts_its_buffered_messages_back(tmp_path, redis_server):
    rt = _runtime(tmp_path, redis_server, 924, [])
    try:
        _warm(rt)
        ids = [r["task_id"] for r in rt.submit_many([{"type": "status_check", "owner": "ann",
                                                      "params": {}}] * 5)]
        assert rt.huey.dequeue().id == ids[0]  # taken with four more, not yet claimed
        assert rt.huey.pending_count() == 0
        assert rt.huey.storage.return_buffered() == 4
        assert sorted(rt.queued_ids()) == sorted(ids[1:])
        assert [rt.huey.dequeue().id for _ in range(4)] == ids[1:]  # in their order
    finally:
        rt.executor.stop()
        rt.close()


def test_a_task_revoked_after_its_batch_was_claimed_does_not_run(tmp_path, redis_server):
    ran: list[str] = []
    rt = _runtime(tmp_path, redis_server, 925, ran)
    try:
        _warm(rt)
        ids = [r["task_id"] for r in rt.submit_many([{"type": "status_check", "owner": "ann",
                                                      "params": {}}] * 4)]
        rt.huey.execute(rt.huey.dequeue())
        rt.revoke(ids[2], terminate=False)
        rt.executor._follow_records()  # the watchdog's look at the records it holds
        for _ in ids[1:]:
            rt.huey.execute(rt.huey.dequeue())
        rt.tracker.flush_outcomes()
        assert ids[2] not in ran
        assert _statuses(rt, ids) == {ids[0]: "SUCCESS", ids[1]: "SUCCESS", ids[2]: "REVOKED",
                                      ids[3]: "SUCCESS"}
    finally:
        rt.executor.stop()
        rt.close()


def test_a_drained_worker_hands_back_a_task_it_claimed_ahead(tmp_path, redis_server):
    rt = _runtime(tmp_path, redis_server, 926, [])
    try:
        _warm(rt)
        ids, held = _claim_a_batch(rt, 3)
        rt.executor.stopping = lambda: True  # refuses new work, as when drained
        for message in held:
            rt.huey.execute(message)
        for task_id in ids[1:]:
            assert rt.tracker.get(task_id)["status"] == "RETRY"
        assert set(ids[1:]) <= rt.queued_ids()
        wait_until(lambda: not rt.executor.running_ids(), 5, "nothing to run")
    finally:
        rt.executor.stop()
        rt.close()


def test_nothing_waits_behind_a_task_not_known_to_run_short(tmp_path, redis_server):
    rt = _runtime(tmp_path, redis_server, 927, [])
    try:
        _warm(rt)
        specs = [{"type": "post_approval", "owner": "ann", "params": {"post_ids": [1]}}] + [
            {"type": "status_check", "owner": "ann", "params": {}}] * 3
        ids = [r["task_id"] for r in rt.submit_many(specs)]
        assert rt.huey.dequeue().id == ids[0]
        assert rt.huey.storage.upcoming() == []
        assert rt.huey.pending_count() == 3  # for any worker
    finally:
        rt.executor.stop()
        rt.close()


def test_thread_workers_each_batch_from_their_own_buffer(tmp_path, redis_server):
    import threading
    url = redis_server.url.rsplit("/", 1)[0] + "/928"
    redis.Redis.from_url(url).flushdb()
    rt = build_runtime(load_settings(data_dir=tmp_path, redis_url=url), worker_kind="thread")
    ran: list[str] = []
    rt.executor.bodies = {**rt.executor.bodies,
                          "status_check": lambda ctx: ran.append(ctx.task_id) or {"ok": True}}
    rt.executor.start_in_worker()
    try:
        _warm(rt)
        ids = [r["task_id"] for r in rt.submit_many([{"type": "status_check", "owner": "ann",
                                                      "params": {}}] * 200)]

        def work() -> None:
            while (message := rt.huey.storage.dequeue() if rt.huey.pending_count() or
                   rt.huey.storage.upcoming() else None) is not None:
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
    finally:
        rt.executor.stop()
        rt.close()
