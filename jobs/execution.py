"""How a tracked task runs inside a worker: claim, run, report, stop when told.

Each worker process has one Executor. It claims a task by moving its record from
PENDING/RETRY to STARTED (so a duplicate message or a revoked task never runs twice or at
all), hands the body a TaskContext for progress, and records the outcome. A watchdog
thread per process enforces timeouts, honours `terminate`, stops a run whose record was
taken away from it, and writes the worker's heartbeat.

Stopping a run from outside raises an Interrupt in the thread running it: by a signal in a
process worker (the task runs in the process's main thread), by an asynchronous exception
in a thread worker. Interrupt derives from BaseException so a task's `except Exception`
cannot swallow it.
"""
from __future__ import annotations

import ctypes
import datetime as dt
import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import insert, select, update

from jobs import faults
from jobs.models import FAILURE, REVOKED, RETRY, STARTED, SUCCESS, tasks, utcnow, workers
from jobs.settings import Settings
from jobs.task_types import POSTED_TYPES
from jobs.tracking import Tracker

log = logging.getLogger("jobs.execution")

POLL_INTERVAL = 0.5  # how often a worker re-reads the records of what it runs
TICK = 0.1
# A worker takes several queued tasks at once and claims them in one transaction (see
# QueueStorage) when they are of types whose runs here typically take at most
# BATCH_BUDGET / BATCH_MAX: at most BATCH_MAX at a time, so the last of a batch starts
# about BATCH_BUDGET after its claim. On SQLite every claim is a commit under the one
# write lock all workers queue for; batches of short tasks share one.
BATCH_MAX = 32
BATCH_BUDGET = 0.016
TYPICAL_WEIGHT = 0.2  # of the latest run in a type's typical run time (a moving average)


class Interrupt(BaseException):
    """Raised inside a running task to stop it; the record has already been settled."""


class Timeout(Interrupt):
    pass


class Stopped(Interrupt):
    pass


class HandBack(Interrupt):
    pass


class TaskContext:
    """What a task body sees: its parameters, and a way to report progress."""

    def __init__(self, executor: "Executor", row: dict) -> None:
        self._executor = executor
        self.row = row  # the worker's copy of the record, kept current by its own changes
        self.task_id: str = row["id"]
        self.type: str = row["type"]
        self.owner: str = row["owner"]
        self.params: dict = row["params"]
        self.attempt: int = row["attempts"]
        self.settings: Settings = executor.settings
        self.db = executor.tracker.db
        # The clock of the task's record (jobs/clock.py): for lines a body adds to its
        # timeline and times it compares with recorded ones.
        self.now = executor.tracker.now

    def progress(self, done: int, total: int) -> None:
        """Report progress; also the checkpoint where a revoked task stops."""
        moved = self._executor.tracker.advance(self.row, STARTED, progress_done=done,
                                               progress_total=total)
        if moved is None:
            raise Stopped()
        self.row = moved


Body = Callable[[TaskContext], object]


@dataclass
class _Run:
    task_id: str
    type: str
    attempt: int
    thread_id: int
    deadline: float
    timeout: float
    interrupt: type[Interrupt] | None = None
    started: float = field(default_factory=time.monotonic)


class Executor:
    def __init__(self, settings: Settings, tracker: Tracker, bodies: dict[str, Body],
                 requeue: Callable[[str, str], None], kind: str) -> None:
        self.settings = settings
        self.tracker = tracker
        self.bodies = bodies
        self.requeue = requeue
        self.kind = kind  # "thread" or "process": how a run is interrupted
        self.worker_id: str | None = None
        self._pid: int | None = None
        self._runs: dict[str, _Run] = {}
        # Messages past the drain check and not yet finished (claiming, or running): listed
        # with the heartbeat like the runs, so a drained worker reads as idle only when none is.
        self._taking: dict[object, tuple[str, str]] = {}
        # Tasks claimed with another's claim and not yet run: {task id: row}.
        self._claimed: dict[str, dict] = {}
        # How long each type's runs take in this process, typically (seconds).
        self._typical: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._chores: threading.Thread | None = None
        # Tasks this process runs at once, as its workers table row says: the consumer's owner
        # sets the real number of threads (`--workers`); a process worker runs one.
        self.threads = settings.worker_concurrency if kind == "thread" else 1
        self._created_in = os.getpid()
        # Set by the consumer's owner: true once the consumer is stopping. A worker that
        # dequeues a message then puts it back instead of starting new work.
        self.stopping: Callable[[], bool] = lambda: False
        # Periodic work of the worker's own (the sweep for lost and stranded tasks), run on a
        # thread of each worker process, so a forking consumer has no thread of its own
        # touching the database at fork time.
        self.housekeeping: Callable[[], object] | None = None
        # Console hooks: a drained worker (flag read on heartbeat) takes no new work, and a
        # paused task type is not claimed (its record stays waiting; resume queues it again).
        # `draining` follows the drain request this worker has read (`_drain_seen`, the row's
        # `drain_requested_at`); both change together, under the lock.
        self.draining = False
        self._drain_seen: dt.datetime | None = None
        self.paused: Callable[[str], bool] = lambda _type: False
        # Set by the runtime where the queue hands out batches (QueueStorage): the (task id,
        # type) of the messages this thread holds next, and a way to put them all back.
        self.upcoming: Callable[[], list[tuple[str, str]]] = lambda: []
        self.return_buffered: Callable[[], int] = lambda: 0
        self.tasks_run = 0
        # The shared clock for heartbeats (jobs/clock.py), so lost-worker decisions made on
        # another machine compare like with like.
        self.clock: Callable[[], dt.datetime] = utcnow

    # -- life cycle (per worker process) --
    def start_in_worker(self) -> None:
        """Called by every worker as it starts; sets this process up once."""
        with self._lock:
            if self._pid == os.getpid():
                return
            forked = os.getpid() != self._created_in
            self._pid = os.getpid()
            self._runs.clear()
            self._taking.clear()
            self._claimed.clear()
            self._stop = threading.Event()
            self.draining, self._drain_seen = False, None  # a new worker row: no drain yet
        if forked:
            # Connections inherited from the parent must not be shared with it.
            self.tracker.db.dispose(close=False)
        if self.kind == "process":
            signal.signal(signal.SIGUSR1, self._on_interrupt_signal)
            _die_with_parent()
        # Unique across restarts: a recycled pid must not revive a dead worker's record.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._heartbeat(first=True)
        self._watchdog = threading.Thread(target=self._watch, name="task-watchdog", daemon=True)
        self._watchdog.start()
        if self.housekeeping is not None:
            self._chores = threading.Thread(target=self._do_housekeeping, name="task-housekeeping",
                                            daemon=True)
            self._chores.start()

    def stop(self) -> None:
        self.tracker.flush_outcomes()  # before the worker's record says it stopped
        try:
            self._give_back_claimed()
            self.return_buffered()
        except Exception as exc:  # noqa: BLE001 - the sweep queues them again
            log.warning("tasks this worker took ahead could not be given back (%s); the "
                        "sweep will queue them again", exc)
        self._stop.set()
        for thread in (self._watchdog, self._chores):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2)
        if self.worker_id is not None:
            with self.tracker.db.begin() as conn:
                conn.execute(update(workers).where(workers.c.id == self.worker_id)
                             .values(stopped_at=self.clock(), running=[]))

    def running_ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running_ids():
            if time.monotonic() >= deadline:
                return False
            time.sleep(TICK)  # shutdown path only, polling our own in-memory table
        return True

    def hand_back_all(self) -> None:
        """At shutdown: give every run back to the queue and stop it."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._hand_back(run.task_id, run.type, run.attempt)
            self._interrupt(run, HandBack)

    def batch_plan(self) -> tuple[int, frozenset[str]]:
        """How many queued messages one dequeue may take, and of which task types."""
        if self.draining or self.stopping():
            return 1, frozenset()
        limit = BATCH_BUDGET / BATCH_MAX
        # list(): one step under the GIL, while another thread may add a type
        short = frozenset(t for t, took in list(self._typical.items()) if took <= limit)
        return (BATCH_MAX if short else 1), short

    # -- running a task --
    def run(self, task_id: str, task_type: str) -> None:
        if self._pid != os.getpid():
            self.start_in_worker()
        token = object()
        with self._lock:  # the heartbeat lists what passed this check (see _heartbeat)
            refused = self.stopping() or self.draining
            if not refused:
                self._taking[token] = (task_id, task_type)
        if refused:
            if not self._give_back_claimed(task_id):
                self.requeue(task_id, task_type)
            self._park_while_drained()
            return
        try:
            self._claim_and_run(task_id, task_type)
        finally:
            with self._lock:
                self._taking.pop(token, None)

    def _claim_and_run(self, task_id: str, task_type: str) -> None:
        if self.paused(task_type):
            # Waiting again if it was claimed ahead; resuming the type queues it.
            self._give_back_claimed(task_id, "its type was paused before it ran", requeue=False)
            return
        faults.point("after_dequeue")
        row = self._claimed_ahead(task_id) or self._claim(task_id)
        if row is None:
            log.debug("task %s not claimed: revoked, finished or taken by another worker", task_id)
            return
        self.tasks_run += 1
        if task_type in POSTED_TYPES:
            # A worker's first task that writes posts loads the writers (0.5-0.7 s of CPU,
            # 3.6 s on a loaded machine): before its clock starts, not inside its timeout.
            from jobs.tasks import preload_writers  # jobs.tasks imports this module
            preload_writers()
        timeout = self.settings.timeout_for(task_type)
        run = _Run(task_id, task_type, row["attempts"], threading.get_ident(),
                   time.monotonic() + timeout, timeout)
        ctx = TaskContext(self, row)
        try:
            try:
                with self._lock:
                    self._runs[task_id] = run
                result = self.bodies[task_type](ctx)
            finally:
                with self._lock:
                    self._runs.pop(task_id, None)
                self._note_run_time(task_type, time.monotonic() - run.started)
        except Interrupt:
            # Whoever interrupted settled the record: timed out, revoked, handed back.
            with self._lock:
                self._runs.pop(task_id, None)
            log.info("task %s stopped (%s)", task_id, (run.interrupt or Stopped).__name__)
            return
        except KeyboardInterrupt:
            # The consumer is being stopped without waiting: give the task back.
            self._hand_back(run.task_id, run.type, run.attempt)
            raise
        except Exception as exc:
            # An error that names its kind (a model refusing or unreachable: "model") is
            # the task's outcome as it stands; anything else is a bug, with its traceback.
            kind = getattr(exc, "error_type", None)
            error = ({"type": kind, "message": str(exc)} if kind else
                     {"type": "exception", "message": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()})
            self.tracker.finish(ctx.row, FAILURE, error=error)
            return
        # Written with this process's next claim, or within moments (a group commit).
        self.tracker.finish(ctx.row, SUCCESS, result=result)

    def _claim(self, task_id: str) -> dict | None:
        """Claim the task, and with it the messages this thread holds next (a batch)."""
        upcoming = self.upcoming()
        paused = set(filter(self.paused, {t for _i, t in upcoming}))  # one look per type
        ahead = [i for i, t in upcoming if i != task_id and t not in paused]
        if ahead:
            with self._lock:
                ahead = [i for i in ahead if i not in self._claimed]
        rows = self.tracker.claim_many([task_id, *ahead], self.worker_id)
        row = rows.pop(task_id, None)
        if rows:
            with self._lock:
                self._claimed.update(rows)
        return row

    def _claimed_ahead(self, task_id: str) -> dict | None:
        if not self._claimed:  # unlocked look: most runs were claimed by themselves
            return None
        with self._lock:
            return self._claimed.pop(task_id, None)

    def _give_back_claimed(self, task_id: str | None = None,
                           why: str = "its worker stopped before running it",
                           requeue: bool = True) -> bool:
        """Make tasks claimed ahead and not run wait again (the worker stops or is drained):
        `task_id`'s, or all. True when there was one."""
        with self._lock:
            if task_id is None:
                rows, self._claimed = list(self._claimed.values()), {}
            else:
                rows = [row] if (row := self._claimed.pop(task_id, None)) else []
        for row in rows:
            self._hand_back(row["id"], row["type"], row["attempts"], why, requeue)
        return bool(rows)

    def _note_run_time(self, task_type: str, took: float) -> None:
        typical = self._typical.get(task_type)
        self._typical[task_type] = took if typical is None else typical + TYPICAL_WEIGHT * (took - typical)

    def _park_while_drained(self) -> None:
        """A drained worker holds its queue slot idle (rather than dequeuing and putting
        back in a loop) until it is undrained or stopped."""
        while self.draining and not self.stopping() and not self._stop.wait(POLL_INTERVAL):
            pass

    def _hand_back(self, task_id: str, task_type: str, attempt: int,
                   why: str = "its worker shut down", requeue: bool = True) -> None:
        moved = self.tracker.transition(
            task_id, RETRY, expect=(STARTED,), attempt=attempt, attempts=attempt - 1, worker=None,
            error={"type": "interrupted", "message": f"{why}; queued again" if requeue else why},
        )
        if moved is not None and requeue:
            self.requeue(task_id, task_type)

    # -- interrupting --
    def _interrupt(self, run: _Run, exc: type[Interrupt]) -> None:
        with self._lock:
            if run.interrupt is not None or self._runs.get(run.task_id) is not run:
                return  # already told, or already finished
            run.interrupt = exc
            if self.kind == "process":
                os.kill(os.getpid(), signal.SIGUSR1)
            else:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(run.thread_id), ctypes.py_object(exc))

    def _on_interrupt_signal(self, _signum, _frame) -> None:
        # Runs in the main thread, which is the one running the task in a process worker.
        # No lock here: the main thread may hold it.
        for run in list(self._runs.values()):
            if run.interrupt is not None and run.thread_id == threading.get_ident():
                raise run.interrupt()

    # -- the watchdog --
    def _watch(self) -> None:
        next_poll = next_beat = time.monotonic()
        while not self._stop.wait(TICK):
            now = time.monotonic()
            try:
                # Its claims' events wait for the next dequeue; a long task's are sent now.
                self.tracker.bus.nudge()
                self._enforce_deadlines(now)
                if now >= next_poll:
                    next_poll = now + POLL_INTERVAL
                    self._follow_records()
                if now >= next_beat:
                    next_beat = now + self.settings.heartbeat_interval
                    self._heartbeat()
            except Exception:
                log.exception("worker watchdog pass failed; retrying")

    def _do_housekeeping(self) -> None:
        # A thread apart from the watchdog: a slow sweep (a slow link to the database, a
        # deep queue) must not hold back this worker's heartbeats and deadlines, or its own
        # live work would be declared lost.
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                self.housekeeping()
            except Exception:
                log.exception("worker housekeeping pass failed; retrying")

    def _enforce_deadlines(self, now: float) -> None:
        with self._lock:
            late = [r for r in self._runs.values() if r.interrupt is None and now >= r.deadline]
        for run in late:
            failed = self.tracker.transition(
                run.task_id, FAILURE, expect=(STARTED,), attempt=run.attempt,
                error={"type": "timeout",
                       "message": f"Operation timeout after {run.timeout:g}s: {run.type}"},
            )
            if failed is not None:
                log.warning("Operation timeout after %gs: %s (task %s)", run.timeout, run.type, run.task_id)
            self._interrupt(run, Timeout)

    def _follow_records(self) -> None:
        """Stop runs whose record moved on: terminated, or given to someone else."""
        with self._lock:
            runs = {r.task_id: r for r in self._runs.values() if r.interrupt is None}
            ahead = {task_id: row["attempts"] for task_id, row in self._claimed.items()}
        if not runs and not ahead:
            return
        with self.tracker.db.connect() as conn:
            rows = conn.execute(
                select(tasks.c.id, tasks.c.status, tasks.c.attempts, tasks.c.terminate)
                .where(tasks.c.id.in_([*runs, *ahead]))
            ).all()
        for task_id, status, attempts, terminate in rows:
            if task_id in ahead:
                if status != STARTED or attempts != ahead[task_id]:
                    with self._lock:  # revoked (or taken) before it ran: it will not run
                        self._claimed.pop(task_id, None)
                continue
            run = runs[task_id]
            if status == STARTED and attempts == run.attempt:
                continue
            if status == REVOKED and not terminate:
                continue  # stops itself at its next checkpoint
            self._interrupt(run, Stopped)

    def _heartbeat(self, first: bool = False, again: bool = False) -> None:
        """Write this worker's row, and read whether it is drained.

        The row's `drain_seen_at` acknowledges the drain request this worker acted on before
        this beat: taken under the lock that `run` checks `draining` under, together with the
        list of what runs, so an acknowledged drain with nothing listed means nothing runs
        and nothing more will start. Whether the worker has obeyed is then read by comparing
        the request with its acknowledgement, never a heartbeat's time with the request's:
        those come from different clocks. A request read for the first time is
        acknowledged at once, with a second beat.
        """
        now = self.clock()
        with self._lock:
            acknowledged = self._drain_seen
            running = [{"task_id": r.task_id, "type": r.type} for r in self._runs.values()]
            listed = {r.task_id for r in self._runs.values()}
            running += [{"task_id": task_id, "type": task_type}
                        for task_id, task_type in self._taking.values() if task_id not in listed]
            running += [{"task_id": task_id, "type": row["type"]}
                        for task_id, row in self._claimed.items() if task_id not in listed]
        with self.tracker.db.begin() as conn:
            beat = None if first else conn.execute(
                update(workers).where(workers.c.id == self.worker_id)
                .values(last_seen=now, running=running, stopped_at=None,
                        tasks_run=self.tasks_run, drain_seen_at=acknowledged)
                .returning(workers.c.drain_requested_at)).first()
            if beat is None:  # a new row, or ours was removed meanwhile: no drain asked of it
                conn.execute(workers.delete().where(workers.c.id == self.worker_id))
                conn.execute(insert(workers).values(
                    id=self.worker_id, hostname=socket.gethostname(), pid=os.getpid(),
                    kind=self.kind, concurrency=self.threads, running=running,
                    started_at=now, last_seen=now, tasks_run=self.tasks_run,
                ))
        requested = beat[0] if beat is not None else None
        with self._lock:
            self._drain_seen, self.draining = requested, requested is not None
        if requested != acknowledged and not again:
            self._heartbeat(again=True)


def _die_with_parent() -> None:
    """A process worker must not outlive its consumer (e.g. when that is SIGKILLed)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError) as exc:
        log.warning("cannot tie worker %s to its parent's life: %s", os.getpid(), exc)
