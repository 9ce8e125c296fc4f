"""Queueing a task on Redis: its creation event and its queue message go in one atomic step,
event first, in one round trip; Huey's revoke flags (unused: revoking is the record's job)
cost no round trip on either side."""
from __future__ import annotations

import json

import redis

from jobs.events import SENT_KEY, STREAM_KEY
from jobs.runtime import build_runtime
from jobs.settings import load_settings
from tests.support import RedisServer


def _runtime(tmp_path, server: RedisServer, db_number: int):
    url = server.url.rsplit("/", 1)[0] + f"/{db_number}"
    return build_runtime(load_settings(data_dir=tmp_path, redis_url=url), worker_kind="process"), \
        redis.Redis.from_url(url)


def test_a_creation_event_is_in_the_log_when_its_message_is_in_the_queue(tmp_path, private_redis):
    rt, client = _runtime(tmp_path, private_redis, 1)
    try:
        rt.submit("status_check", "ann", {})  # loads the script
        client.flushdb()
        client.config_resetstat()
        record = rt.submit("status_check", "ann", {})
        # One script call did both (commands a script runs are counted too).
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in client.info("commandstats").items()}
        assert calls == {"evalsha": 1, "xadd": 1, "zadd": 1, "get": 2, "set": 2,
                         "config|resetstat": 1}, calls
        [(_id, fields)] = client.xrange(STREAM_KEY)
        event = json.loads(fields[b"d"])["task"]
        assert event["task_id"] == record["task_id"] and event["status"] == "PENDING"
        assert event["version"] == 1 and "result" not in event
        assert client.get(SENT_KEY + record["task_id"]) == b"1"
        assert rt.queued_ids() == {record["task_id"]}
        # A Redis that lost its scripts (restarted) takes the next one all the same.
        client.script_flush()
        batch = rt.submit_many([{"type": "status_check", "owner": "ann", "params": {}}] * 3)
        assert rt.queued_ids() == {record["task_id"], *(r["task_id"] for r in batch)}
        assert client.xlen(STREAM_KEY) == 4
    finally:
        rt.close()


def test_running_a_task_asks_redis_for_no_revoke_flags(tmp_path, private_redis):
    rt, client = _runtime(tmp_path, private_redis, 2)
    try:
        client.flushdb()
        record = rt.submit("status_check", "ann", {})
        client.config_resetstat()
        rt.huey.execute(rt.huey.dequeue())
        rt.tracker.flush_outcomes()
        assert rt.tracker.get(record["task_id"])["status"] == "SUCCESS"
        calls = {k.removeprefix("cmdstat_") for k in client.info("commandstats")}
        assert not calls & {"hmget", "hdel", "hget"}, calls
    finally:
        rt.executor.stop()
        rt.close()
