"""The tracker's hot path (claim and the worker's own changes on the DB-API cursor) writes
what the SQLAlchemy path reads, on SQLite and PostgreSQL, and every change carries a version."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import select

from jobs import task_stats, tracking
from jobs.events import MemoryEventBus
from jobs.models import FAILURE, RETRY, REVOKED, STARTED, SUCCESS, WAITING_STATUSES, task_history, utcnow
from jobs.tracking import Tracker
from tests.support import wait_until


def _finished_since(conn, since, status) -> int:
    return conn.execute(select(task_stats.finished_since(since, status))).scalar_one()


@pytest.fixture
def tracker(db):
    return Tracker(db, MemoryEventBus(1000))


def _events(tracker: Tracker, task_id: str) -> list[dict]:
    return [e.data["task"] for e in tracker.bus._ring if e.data["task"]["task_id"] == task_id]


def test_claim_progress_and_outcome_round_trip(tracker):
    created = tracker.create(task_type="status_check", owner="ann", params={"a": [1, "é"]},
                             max_attempts=3)
    task_id = created["task_id"]
    row = tracker.claim(task_id, "host:1")
    assert row["status"] == STARTED and row["attempts"] == 1 and row["params"] == {"a": [1, "é"]}
    assert tracker.claim(task_id, "host:2") is None  # compare-and-set: claimed once
    row = tracker.advance(row, STARTED, progress_done=1, progress_total=2)
    row = tracker.advance(row, SUCCESS, result={"ok": True}, finished_at=utcnow())
    record = tracker.get(task_id)
    assert record["status"] == SUCCESS and record["result"] == {"ok": True}
    assert record["progress"] == {"done": 1, "total": 2} and record["worker"] == "host:1"
    assert record["finished_at"].endswith("Z") and record["started_at"] <= record["finished_at"]
    assert record["version"] == 4 == row["version"]
    assert [t["status"] for t in tracker.timeline(task_id)] == ["PENDING", "STARTED", "SUCCESS"]
    events = _events(tracker, task_id)
    assert [e["version"] for e in events] == [1, 2, 3, 4]
    assert [e["status"] for e in events] == ["PENDING", STARTED, STARTED, SUCCESS]
    with tracker.db.connect() as conn:
        assert _finished_since(conn, utcnow() - dt.timedelta(minutes=5), SUCCESS) == 1
        attempts = conn.execute(select(task_history.c.attempt)
                                .where(task_history.c.task_id == task_id)).scalars().all()
    assert attempts == [0, 1, 1]


def test_a_change_from_elsewhere_wins_over_the_workers_copy(tracker):
    task_id = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
    row = tracker.claim(task_id, "host:1")
    assert tracker.transition(task_id, REVOKED, expect=(*WAITING_STATUSES, STARTED),
                              finished_at=utcnow()) is not None
    assert tracker.advance(row, STARTED, progress_done=1, progress_total=2) is None
    assert tracker.advance(row, FAILURE, error={"type": "exception", "message": "x"},
                           finished_at=utcnow()) is None
    record = tracker.get(task_id)
    assert record["status"] == REVOKED and record["version"] == 3


def test_a_moved_version_falls_back_to_the_status_check(tracker):
    """Another writer bumped the version without taking the task away: the outcome still lands."""
    task_id = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
    row = tracker.claim(task_id, "host:1")
    tracker.transition(task_id, STARTED, expect=(STARTED,), progress_done=5, progress_total=9)
    done = tracker.advance(row, SUCCESS, result=1, finished_at=utcnow())
    assert done is not None and done["version"] == 4
    assert tracker.get(task_id)["progress"] == {"done": 5, "total": 9}


def test_hand_back_and_reclaim_keeps_counting_attempts(tracker):
    task_id = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
    row = tracker.claim(task_id, "host:1")
    tracker.transition(task_id, RETRY, expect=(STARTED,), attempt=row["attempts"], worker=None)
    again = tracker.claim(task_id, "host:2")
    assert again["attempts"] == 2 and again["error"] is None and again["finished_at"] is None


def test_discard_takes_back_fresh_records_all_or_none(tracker):
    """What a refused enqueue does: records nobody claimed go, with their timelines; if one
    was claimed (its message got through after all), none goes."""
    fresh = [tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
             for _ in range(2)]
    assert tracker.discard(fresh)
    assert [tracker.get(t) for t in fresh] == [None, None] and tracker.timeline(fresh[0]) == []
    batch = [t["task_id"] for t in tracker.create_many(
        [{"type": "status_check", "owner": "ann", "params": {}}] * 3, 3)]
    tracker.claim(batch[1], "host:1")
    assert not tracker.discard(batch)
    assert [tracker.get(t)["status"] for t in batch] == ["PENDING", STARTED, "PENDING"]
    assert len(tracker.timeline(batch[0])) == 1


def test_an_outcome_is_written_with_the_next_claim_in_one_transaction(tracker):
    """Group commit: a worker's outcome waits for its process's next claim and shares its
    commit; its event leaves after that commit, before the claim's."""
    first, second = (tracker.create(task_type="status_check", owner="ann", params={},
                                    max_attempts=3)["task_id"] for _ in range(2))
    row = tracker.claim(first, "host:1")
    commits = []  # the tracker keeps one connection per thread: count its commits
    tracker.sql._local.conn = _CountingCommits(tracker.sql._local.conn, commits)
    try:
        tracker.finish(row, SUCCESS, result={"ok": 1}, finished_at=utcnow())
        assert tracker.claim(second, "host:1")["status"] == STARTED
    finally:
        tracker.sql._local.conn = tracker.sql._local.conn.inner
    assert len(commits) == 1
    record = tracker.get(first)
    assert record["status"] == SUCCESS and record["result"] == {"ok": 1} and record["version"] == 3
    assert [t["status"] for t in tracker.timeline(first)] == ["PENDING", STARTED, SUCCESS]
    order = [(e.data["task"]["task_id"], e.data["task"]["status"]) for e in tracker.bus._ring]
    assert order.index((first, SUCCESS)) < order.index((second, STARTED))
    with tracker.db.connect() as conn:
        assert _finished_since(conn, utcnow() - dt.timedelta(minutes=5), SUCCESS) == 1


def test_an_outcome_with_no_claim_after_it_is_written_within_moments(tracker):
    task_id = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
    row = tracker.claim(task_id, "host:1")
    tracker.finish(row, FAILURE, error={"type": "exception", "message": "x"}, finished_at=utcnow())
    wait_until(lambda: tracker.get(task_id)["status"] == FAILURE, 5, "the outcome thread")
    assert [e["status"] for e in _events(tracker, task_id)][-1] == FAILURE


def test_a_pending_outcome_loses_to_a_change_from_elsewhere(tracker, monkeypatch):
    # The outcome waits for flush_outcomes below: on a loaded machine the outcome thread's
    # 5 ms came before the revoke, which then found the task already finished.
    monkeypatch.setattr(tracking, "OUTCOME_DELAY", 60.0)
    task_id = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
    row = tracker.claim(task_id, "host:1")
    tracker.finish(row, SUCCESS, result=1, finished_at=utcnow())
    # Revoked before the outcome was written: the revoke stands, the outcome is dropped.
    assert tracker.transition(task_id, REVOKED, expect=(STARTED,), finished_at=utcnow())
    tracker.flush_outcomes()
    record = tracker.get(task_id)
    assert record["status"] == REVOKED and record["version"] == 3


def test_a_batch_is_claimed_and_its_outcomes_written_together(tracker, monkeypatch):
    """A worker's batch: claims in one statement, its outcomes in one; a compare-and-set
    that fails for one (revoked meanwhile) leaves the others written, and the stored stats
    count each written outcome once."""
    # The outcomes wait for flush_outcomes below: on a loaded machine the outcome thread's
    # 5 ms came before the revoke, which then found the task already finished.
    monkeypatch.setattr(tracking, "OUTCOME_DELAY", 60.0)
    ids = [tracker.create(task_type="status_check", owner="ann", params={"n": n},
                          max_attempts=3)["task_id"] for n in range(5)]
    taken = tracker.claim_many(ids[:4] + ["no-such-task"], "host:1")
    assert sorted(taken) == sorted(ids[:4])
    assert all(r["status"] == STARTED and r["attempts"] == 1 for r in taken.values())
    assert tracker.claim_many(ids, "host:2").keys() == {ids[4]}  # each claimed once
    for task_id in ids[:4]:
        tracker.finish(taken[task_id], SUCCESS, result={"id": task_id}, finished_at=utcnow())
    assert tracker.transition(ids[1], REVOKED, expect=(STARTED,), finished_at=utcnow())
    tracker.flush_outcomes()
    for task_id in ids[:4]:
        record = tracker.get(task_id)
        timeline = [t["status"] for t in tracker.timeline(task_id)]
        if task_id == ids[1]:
            assert record["status"] == REVOKED and timeline == ["PENDING", STARTED, REVOKED]
        else:
            assert record["status"] == SUCCESS and record["result"] == {"id": task_id}
            assert record["version"] == 3 and timeline == ["PENDING", STARTED, SUCCESS]
    with tracker.db.connect() as conn:
        since = utcnow() - dt.timedelta(minutes=5)
        assert _finished_since(conn, since, SUCCESS) == 3
        assert _finished_since(conn, since, REVOKED) == 1


def test_a_flush_returns_once_the_outcome_threads_write_is_over(tracker, monkeypatch):
    """A stopping worker flushes its outcomes, then exits: one the outcome thread had taken
    and was still writing died with the process (and the task ran again as a lost run)."""
    writing, release = threading.Event(), threading.Event()
    write = tracker._write_outcomes

    def slow_from_the_outcome_thread(cursor, outcomes):
        if threading.current_thread().name == "task-outcomes":
            writing.set()
            release.wait(30)
            time.sleep(0.2)  # a write that takes its time (a busy database)
        return write(cursor, outcomes)
    monkeypatch.setattr(tracker, "_write_outcomes", slow_from_the_outcome_thread)
    wait_landed = tracker._outcomes.wait_landed
    monkeypatch.setattr(tracker._outcomes, "wait_landed", lambda: (release.set(), wait_landed()))
    task_id = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
    tracker.finish(tracker.claim(task_id, "host:1"), SUCCESS, result=1, finished_at=utcnow())
    assert writing.wait(10), "the outcome thread took the outcome"
    tracker.flush_outcomes()  # finds nothing of its own to write, and the write under way
    assert tracker.get(task_id)["status"] == SUCCESS


def test_an_outcome_that_cannot_be_stored_fails_in_the_worker_not_later(tracker):
    task_id = tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)["task_id"]
    row = tracker.claim(task_id, "host:1")
    with pytest.raises(TypeError):
        tracker.finish(row, SUCCESS, result=object(), finished_at=utcnow())
    tracker.flush_outcomes()  # nothing poisoned is left waiting
    assert tracker.get(task_id)["status"] == STARTED


class _CountingCommits:
    def __init__(self, inner, commits: list) -> None:
        self.inner, self._commits = inner, commits

    def commit(self) -> None:
        self._commits.append(1)
        self.inner.commit()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_batch_claim_finds_its_tasks_by_id_not_by_walking_every_waiting_one(tmp_path):
    """SQLite's planner took the status index for a batch's claim: a walk over every waiting
    task per claim, 5.5 ms against 1.1 ms by id with 50,000 waiting."""
    import json
    import sqlite3

    from jobs.db import make_engine
    tracker = Tracker(make_engine(f"sqlite:///{tmp_path / 'app.db'}"), MemoryEventBus(10))
    conn = sqlite3.connect(tmp_path / "app.db")
    plan = " ".join(row[3] for row in conn.execute(
        "EXPLAIN QUERY PLAN " + tracker.sql._claim,
        {"ids": json.dumps(["a", "b"]), "worker": "w", "now": "2026-01-01 00:00:00"}))
    assert "(id=?)" in plan and "status" not in plan, plan
