"""The first request to meet a Redis outage records its task, then the queue refuses it: the
task is taken back (the client's 503 leaves no FAILURE nobody asked for), against a real
redis-server that is killed under the runtime."""
from __future__ import annotations

import signal

import pytest
from sqlalchemy import func, select

from jobs.models import task_history, tasks
from jobs.outage import redis_outage
from jobs.runtime import QueueUnavailable, build_runtime
from jobs.settings import load_settings
from tests.support import RedisServer


@pytest.fixture
def redis_mode(tmp_path):
    server = RedisServer(tmp_path)
    rt = build_runtime(load_settings(data_dir=tmp_path, redis_url=server.url))
    yield rt, server
    rt.close()
    server.stop()


def _counts(rt) -> tuple[int, int]:
    with rt.db.connect() as conn:
        return (conn.execute(select(func.count()).select_from(tasks)).scalar_one(),
                conn.execute(select(func.count()).select_from(task_history)).scalar_one())


def test_a_task_the_queue_refuses_leaves_no_record(redis_mode):
    rt, server = redis_mode
    kept = rt.submit("status_check", "ann", {})
    server.proc.stop(signal.SIGKILL)
    assert not redis_outage.down  # nothing noticed yet: this request records, then enqueues
    with pytest.raises(QueueUnavailable):
        rt.submit("status_check", "ann", {})
    assert redis_outage.down
    # A process that has not met the outage yet (forgotten here) records a batch, then the
    # queue refuses it: the batch is taken back whole, like the single task.
    redis_outage.succeeded()
    with pytest.raises(QueueUnavailable):
        rt.submit_many([{"type": "status_check", "owner": "ann", "params": {}}] * 3)
    assert _counts(rt) == (1, 1)  # only the task queued before the outage, and its PENDING
    assert rt.tracker.get(kept["task_id"])["status"] == "PENDING"

    server.start()  # no persistence: the queue comes back empty
    again = rt.submit("status_check", "ann", {})  # the known outage ends with one PING
    assert not redis_outage.down
    assert again["task_id"] in rt.queued_ids()
    statuses = [r["status"] for r in (rt.tracker.get(kept["task_id"]), rt.tracker.get(again["task_id"]))]
    assert statuses == ["PENDING", "PENDING"] and _counts(rt) == (2, 2)
