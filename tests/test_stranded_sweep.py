"""The sweep for waiting tasks whose queue message was lost (jobs/reaper.py) tells a lost
message from one a worker took between its two reads (the record, then the queue)."""
from __future__ import annotations

import datetime as dt

import redis
import sqlalchemy

from jobs import pause, reaper
from jobs.reaper import Reaper
from jobs.runtime import build_runtime
from jobs.settings import load_settings


def _runtime(tmp_path, redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/931"
    redis.Redis.from_url(url).flushdb()
    rt = build_runtime(load_settings(data_dir=tmp_path, redis_url=url), worker_kind="process")
    # Every record looks old enough to be swept.
    later = rt.clock.now
    rt.clock.now = lambda: later() + dt.timedelta(hours=1)
    return rt


def test_a_message_taken_by_a_worker_during_the_sweep_is_not_queued_again(tmp_path, redis_server, caplog):
    rt = _runtime(tmp_path, redis_server)
    try:
        taken, lost = (rt.submit("status_check", "ann", {})["task_id"] for _ in range(2))
        rt.huey.storage.conn.delete(rt.huey.storage.queue_key)  # both messages gone
        read_queue = rt.queued_ids

        def queue_read_while_a_worker_claims() -> set[str]:
            assert rt.tracker.claim(taken, "host:1:abc") is not None
            return read_queue()
        rt.queued_ids = queue_read_while_a_worker_claims
        assert Reaper(rt)._requeue_stranded() == 1
        assert read_queue() == {lost}  # the lost one is queued again; the claimed one is not
        assert f"queueing 1 waiting task(s) again whose queue message was lost: {lost}" in caplog.text
    finally:
        rt.close()


def test_paused_records_are_left_out_by_the_query_not_read_one_by_one(tmp_path, redis_server, monkeypatch):
    """A pause of more waiting tasks than one pass looks at neither hides another type's lost
    messages behind them nor costs a read of the pause per record."""
    rt = _runtime(tmp_path, redis_server)
    try:
        monkeypatch.setattr(reaper, "STRANDED_BATCH", 3)
        pause.pause(rt.db, "weekly_report", "manager@example.com")
        for _ in range(5):  # older than the lost one, so the batch would be theirs first
            rt.submit("weekly_report", "ann", {})
        lost = rt.submit("status_check", "ann", {})["task_id"]
        rt.huey.storage.conn.delete(rt.huey.storage.queue_key)  # every message gone

        statements: list[str] = []
        sqlalchemy.event.listen(rt.db, "before_cursor_execute",
                                lambda _c, _cur, sql, *_a: statements.append(sql))
        assert Reaper(rt)._requeue_stranded() == 1
        assert rt.queued_ids() == {lost}
        # the pause read once, the waiting records, the re-read of the lost one
        assert len(statements) == 3, statements

        pause.pause(rt.db, None, "manager@example.com")  # everything paused: nothing to look at
        statements.clear()
        assert Reaper(rt)._requeue_stranded() == 0
        assert len(statements) == 1, statements
    finally:
        rt.close()
