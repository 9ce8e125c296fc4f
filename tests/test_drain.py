"""Draining a worker, decided without comparing clocks: the worker acknowledges the drain it
has read, and the web reads worker times on the workers' own (shared) clock.

A worker's heartbeat is stamped with the shared clock (Redis's, jobs/clock.py); the web's
clock may be off from it (by the estimate's error on one machine, by seconds across
machines). These tests give the worker a clock ahead of the web's and drain it right after
a heartbeat: that heartbeat predates the drain, whatever the two timestamps say.
"""
from __future__ import annotations

import datetime as dt
import os
import threading

import pytest

from jobs import workers as worker_states
from jobs.events import MemoryEventBus
from jobs.execution import Executor
from jobs.models import utcnow
from jobs.settings import load_settings
from jobs.tracking import Tracker
from tests.support import wait_until

LOST_AFTER = 10.0
AHEAD = dt.timedelta(seconds=5)  # the shared clock as a web host whose own clock is behind sees it


def shared_clock() -> dt.datetime:
    return utcnow() + AHEAD




@pytest.fixture
def worker(db, tmp_path):
    """An executor as a worker process has it, its heartbeats written by hand (no watchdog),
    so each test decides exactly when the worker reads its row."""
    settings = load_settings(data_dir=tmp_path)
    requeued: list[str] = []
    executor = Executor(settings, Tracker(db, MemoryEventBus(100), now=shared_clock),
                        {"status_check": lambda ctx: "ok"},
                        lambda task_id, _type: requeued.append(task_id), "thread")
    executor.clock = shared_clock
    executor.requeued = requeued
    executor.worker_id = "host-a:101:abcdef"
    executor._pid = os.getpid()  # set up as start_in_worker would, minus its threads
    executor._heartbeat(first=True)
    executor._heartbeat()
    yield executor
    executor._stop.set()


def drain(db, worker, draining: bool) -> None:
    """The web's request, stamped by a clock behind the one the worker stamps heartbeats with
    (another process's estimate of the shared clock, or another machine's)."""
    worker_states.set_draining(db, worker.worker_id, draining, now=utcnow())


def state(db, worker_id: str) -> str:
    return {w["id"]: w for w in worker_states.list_workers(db, LOST_AFTER, now=shared_clock())}[worker_id]["state"]


def test_a_heartbeat_just_before_a_drain_has_not_obeyed_it(db, worker):
    # The heartbeat above was stamped 5 s ahead of the web's clock; the drain lands after it.
    drain(db, worker, True)
    assert not worker.draining
    assert state(db, worker.worker_id) == "stopping"  # not told yet: it may still take work

    worker._heartbeat()  # reads the drain, and says so
    assert worker.draining
    assert state(db, worker.worker_id) == "stopped"


def test_a_second_drain_after_an_undrain_needs_a_new_acknowledgement(db, worker):
    drain(db, worker, True)
    worker._heartbeat()
    assert state(db, worker.worker_id) == "stopped"
    drain(db, worker, False)
    assert state(db, worker.worker_id) == "running"
    drain(db, worker, True)  # before it saw the undrain
    assert state(db, worker.worker_id) == "stopping"
    worker._heartbeat()
    assert state(db, worker.worker_id) == "stopped"
    drain(db, worker, False)
    worker._heartbeat()
    assert not worker.draining and state(db, worker.worker_id) == "running"


def test_a_drained_worker_puts_work_back_once_it_has_read_the_drain(db, worker):
    task = worker.tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)
    drain(db, worker, True)
    worker._heartbeat()
    runner = threading.Thread(target=worker.run, args=(task["task_id"], "status_check"), daemon=True)
    runner.start()
    wait_until(lambda: worker.requeued == [task["task_id"]], 10, "the task to be put back")
    worker._stop.set()  # ends the slot's wait for an undrain
    runner.join(10)
    assert worker.tracker.get(task["task_id"])["status"] == "PENDING"


def test_a_task_taken_before_the_drain_was_read_keeps_the_worker_stopping(db, worker):
    """A worker that had passed its drain check when the drain arrived lists that task with
    the heartbeat that acknowledges the drain: stopped means nothing runs or is starting."""
    task = worker.tracker.create(task_type="status_check", owner="ann", params={}, max_attempts=3)
    taking, go = threading.Event(), threading.Event()

    def paused(_type: str) -> bool:  # the step between the drain check and the claim
        taking.set()
        go.wait(10)
        return False
    worker.paused = paused
    runner = threading.Thread(target=worker.run, args=(task["task_id"], "status_check"), daemon=True)
    runner.start()
    wait_until(taking.is_set, 10, "the worker to be taking the task")
    drain(db, worker, True)
    worker._heartbeat()
    assert worker.draining
    assert state(db, worker.worker_id) == "stopping"
    go.set()
    runner.join(10)
    worker.tracker.flush_outcomes()
    assert worker.tracker.get(task["task_id"])["status"] == "SUCCESS"
    worker._heartbeat()
    assert state(db, worker.worker_id) == "stopped"


def test_liveness_is_read_on_the_workers_clock(db, worker):
    """A web host whose own clock is behind the shared one neither shows a live worker as
    lost nor a dead one as alive."""
    listed = {w["id"]: w for w in worker_states.list_workers(db, LOST_AFTER, now=shared_clock())}[worker.worker_id]
    assert listed["state"] == "running"
    assert 0 <= listed["seconds_since_heartbeat"] < 1
