"""Alerts posted to ALERT_WEBHOOK_URL, received by a local HTTP server (pytest-httpserver)."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import redis
from sqlalchemy import insert, update
from werkzeug import Response

from jobs.alerts import Alerter, failures_between, recent
from jobs.models import FAILURE, STARTED, tasks, utcnow, workers
from jobs.runtime import build_runtime
from jobs.settings import load_settings
from tests.support import free_port, wait_until


@pytest.fixture
def receiver(httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    return httpserver


@pytest.fixture
def alerter(tmp_path, receiver):
    settings = load_settings(data_dir=tmp_path, alert_webhook_url=receiver.url_for("/hook"),
                             alert_backlog_seconds=60, alert_check_interval=3600)
    rt = build_runtime(settings)
    made = Alerter(rt)
    made.start()  # the sender; checks are run by the tests
    yield made
    made.stop()
    rt.close()


def _received(server) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in server.log]


def _fail(rt, task_type: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        record = rt.tracker.create(task_type=task_type, owner="a", params={}, max_attempts=1)
        rt.tracker.transition(record["task_id"], FAILURE, expect=("PENDING",), finished_at=utcnow(),
                              error={"type": "exception", "message": "boom"})
        ids.append(record["task_id"])
    return ids


def test_failures_are_grouped_at_most_one_message_per_type_per_minute(alerter, receiver):
    rt = alerter.runtime
    _fail(rt, "content_generation", 3)
    _fail(rt, "weekly_report", 1)
    alerter.check_once()
    wait_until(lambda: len(receiver.log) == 2, 10, "two alert messages")
    by_type = {m["alert"]["details"]["task_type"]: m for m in _received(receiver)}
    assert by_type["content_generation"]["alert"]["details"]["count"] == 3
    assert by_type["content_generation"]["alert"]["kind"] == "task_failed"
    assert "3 content_generation tasks failed" in by_type["content_generation"]["text"]

    _fail(rt, "content_generation", 2)
    alerter.check_once()  # within the minute: gathered, not sent
    assert len(_received(receiver)) == 2
    alerter._told["task_failed:content_generation"] -= 61  # the minute has passed
    alerter.check_once()
    wait_until(lambda: len(receiver.log) == 3, 10, "the grouped follow-up")
    assert _received(receiver)[-1]["alert"]["details"]["count"] == 2
    assert [a["state"] for a in recent(rt.db)] == ["sent"] * 3


def test_a_failure_committed_after_the_pass_that_its_time_precedes_is_still_alerted(alerter, receiver):
    """A worker stamps a failure, then commits it a moment later (its next claim carries the
    outcome, or the SQLite write lock makes it wait): a pass that ran in between must not
    let the next one skip it, and overlapping passes count each failure once."""
    rt = alerter.runtime
    stamped = utcnow()
    alerter.check_once()  # runs before the failure below is committed
    record = rt.tracker.create(task_type="status_check", owner="a", params={}, max_attempts=1)
    with rt.db.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.id == record["task_id"]).values(
            status=FAILURE, finished_at=stamped, error={"type": "exception", "message": "late"}))
    alerter.check_once()
    wait_until(lambda: len(receiver.log) == 1, 10, "the late failure's alert")
    assert _received(receiver)[0]["alert"]["details"] == {
        "task_type": "status_check", "count": 1, "example_task_id": record["task_id"]}
    alerter._told["task_failed:status_check"] -= 61  # the minute has passed
    alerter.check_once()
    alerter.check_once()
    assert len(receiver.log) == 1  # counted once, though two more passes read it again


def test_the_failure_check_reads_only_the_tasks_finished_since_the_last_pass(alerter):
    """The check runs every few seconds for the life of the process: its query must be a
    range on the finish-time index, never a walk of every failure ever recorded (SQLite's
    planner chose the status index for `status = 'FAILURE'`: 0.4 s a pass at 1M tasks)."""
    now = utcnow()
    query = failures_between(now - dt.timedelta(seconds=5), now)
    with alerter.db.connect() as conn:
        compiled = query.compile(alerter.db, compile_kwargs={"literal_binds": True})
        plan = " ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "ix_tasks_finished" in plan and "ix_tasks_status" not in plan, plan


def test_lost_worker_old_backlog_and_overdue_task_each_alert_once(alerter, receiver):
    rt = alerter.runtime
    long_ago = utcnow() - dt.timedelta(minutes=30)
    with rt.db.begin() as conn:
        conn.execute(insert(workers).values(id="gone:1", hostname="gone", pid=1, kind="process",
                                            concurrency=1, running=[], started_at=long_ago,
                                            last_seen=long_ago))
    waiting = rt.tracker.create(task_type="status_check", owner="a", params={}, max_attempts=1)
    stuck = rt.tracker.create(task_type="status_check", owner="a", params={}, max_attempts=1)
    rt.tracker.transition(stuck["task_id"], STARTED, expect=("PENDING",), started_at=long_ago)
    with rt.db.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.id == waiting["task_id"])
                     .values(enqueued_at=long_ago))
    alerter.check_once()
    alerter.check_once()  # nothing new: nothing sent twice
    wait_until(lambda: len(receiver.log) >= 3, 10, "three alerts")
    kinds = sorted(m["alert"]["kind"] for m in _received(receiver))
    assert kinds == ["backlog", "task_overdue", "worker_lost"]
    overdue = next(m for m in _received(receiver) if m["alert"]["kind"] == "task_overdue")
    assert overdue["alert"]["details"]["task_id"] == stuck["task_id"]


def test_redis_unreachable_alerts_once_per_outage(alerter, receiver):
    alerter.runtime.redis_client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    alerter.check_once()
    alerter.check_once()
    wait_until(lambda: receiver.log, 10, "the alert")
    assert [m["alert"]["kind"] for m in _received(receiver)] == ["redis_unreachable"]
    alerter.runtime.redis_client.close()
    alerter.runtime.redis_client = None


def test_a_refused_delivery_is_retried(tmp_path, httpserver):
    httpserver.expect_ordered_request("/hook").respond_with_response(Response("busy", status=503))
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    rt = build_runtime(load_settings(data_dir=tmp_path, alert_webhook_url=httpserver.url_for("/hook"),
                                     alert_check_interval=3600))
    made = Alerter(rt)
    made.start()
    try:
        _fail(rt, "status_check", 1)
        made.check_once()
        wait_until(lambda: recent(rt.db)[0]["state"] == "sent", 15, "the second attempt")
        assert recent(rt.db)[0]["attempts"] == 2 and len(httpserver.log) == 2
    finally:
        made.stop()
        rt.close()


def test_alerts_reach_the_webhook_from_a_running_product_and_the_health_page(fresh_stack, receiver,
                                                                              fake_llm):
    stack = fresh_stack("embedded", ALERT_WEBHOOK_URL=receiver.url_for("/hook"),
                        ALERT_CHECK_INTERVAL="0.2", TIMEOUT_CONTENT_GENERATION="1").start()
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL alert"})
    stack.wait_status(task_id, "FAILURE")
    wait_until(lambda: any(m["alert"]["kind"] == "task_failed" for m in _received(receiver)),
               15, "the failure alert")
    fake_llm.release_stalled()
    listed = stack.client.get("/api/alerts").json()
    assert listed["webhook_configured"] and listed["alerts"][0]["kind"] == "task_failed"
    page = stack.client.get("/health", headers={"Accept": "text/html"}).text
    assert 'data-alert="task_failed"' in page


def test_a_webhook_url_must_be_http():
    with pytest.raises(Exception, match="ALERT_WEBHOOK_URL"):
        load_settings(alert_webhook_url="file:///etc/passwd")
