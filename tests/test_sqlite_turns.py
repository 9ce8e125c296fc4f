"""SQLite write turns (jobs/sqlite_turns.py): requests' writes go before the workers' in line,
background work gives way while a request waits, and no turn outlives its transaction or its
process. Background writers are real processes; this test process is a web process."""
from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from jobs import sqlite_turns
from tests.support import PYTHON, ROOT, wait_until

# A background process: takes a write turn with its first INSERT, says so, holds it until
# told to commit (a line on stdin), and says when it is done.
BACKGROUND_WRITER = """
import sqlite3, sys
from jobs import sqlite_turns
sqlite_turns.background()
conn = sqlite3.connect(sys.argv[1], factory=sqlite_turns.Connection, timeout=10)
print("asking", flush=True)
conn.execute("INSERT INTO log (who) VALUES (?)", (sys.argv[2],))
print("holding", flush=True)
sys.stdin.readline()
conn.commit()
print("done", flush=True)
"""

# A background process between two steps of its work.
GIVING_WAY = """
import sys
from jobs import sqlite_turns
sqlite_turns.background()
sqlite_turns._databases.add(sys.argv[1])  # as a worker that has written the database
print("ready", flush=True)
sqlite_turns.give_way()
print("went on", flush=True)
"""

# A background process whose task is interrupted (a revoke, a timeout: the worker raises in
# the task's thread from a signal handler) while it waits for a turn.
INTERRUPTED = """
import signal, sqlite3, sys
from jobs import sqlite_turns
sqlite_turns.background()
class Revoked(Exception):
    pass
def interrupt(*_):
    raise Revoked()
signal.signal(signal.SIGUSR1, interrupt)
conn = sqlite3.connect(sys.argv[1], factory=sqlite_turns.Connection, timeout=10)
print("asking", flush=True)
try:
    conn.execute("INSERT INTO log (who) VALUES ('interrupted')")
except Revoked:
    conn.rollback()
    print("interrupted", flush=True)
sys.stdin.readline()
conn.execute("INSERT INTO log (who) VALUES ('next task')")
conn.commit()
print("done", flush=True)
"""


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "turns.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT)")
    conn.commit()
    conn.close()
    return path


def connect(path: str) -> sqlite_turns.Connection:
    return sqlite3.connect(path, factory=sqlite_turns.Connection, timeout=10,
                           check_same_thread=False)


class Background:
    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen([PYTHON, "-c", script, *args], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})

    def says(self, word: str) -> None:
        line = self.proc.stdout.readline().strip()
        assert line == word, f"expected {word!r}, the process said {line!r}"

    def tell(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def blocked_on_a_file_lock(self) -> bool:
        return waiting_for_locks(self.proc.pid) > 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def processes():
    started: list[Background] = []
    yield lambda script, *args: started.append(Background(script, *args)) or started[-1]
    for proc in started:
        proc.stop()


def log(path: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [who for (who,) in conn.execute("SELECT who FROM log ORDER BY id")]


def free(path: str) -> bool:
    with open(path, "a") as other:  # an open file of its own: this process's locks conflict
        try:
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
        return True


def turn_is_free(database: str) -> bool:
    return free(f"{database}.writers") and free(f"{database}.first")


def waiting_for_locks(pid: int) -> int:
    """How many file locks process `pid` waits for in the kernel (/proc/locks lists them
    behind a "->")."""
    return sum("->" in line and str(pid) in line.split()
               for line in Path("/proc/locks").read_text().splitlines())


def write_in_thread(conn: sqlite_turns.Connection, who: str) -> tuple[threading.Thread,
                                                                       threading.Event]:
    """A thread writing a row on `conn` and committing; the event is set once it has."""
    done = threading.Event()

    def write() -> None:
        conn.execute("INSERT INTO log (who) VALUES (?)", (who,))
        conn.commit()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    return thread, done


def test_a_request_writes_before_the_workers_waiting_in_line(database, processes):
    holder = processes(BACKGROUND_WRITER, database, "worker 1")
    holder.says("asking")
    holder.says("holding")
    waiting = [processes(BACKGROUND_WRITER, database, f"worker {n}") for n in (2, 3)]
    for proc in waiting:
        proc.says("asking")
        wait_until(proc.blocked_on_a_file_lock, 10, "a worker waiting for its turn")

    web = connect(database)
    request, wrote = write_in_thread(web, "request")
    wait_until(lambda: waiting_for_locks(os.getpid()) == 1 and not free(f"{database}.first"), 10,
               "the request to want a turn")
    holder.tell()  # the transaction under way ends; the request goes next
    request.join(10)
    assert wrote.is_set()
    holder.says("done")
    for proc in waiting:  # each commits as soon as it has its turn
        proc.tell()
    for proc in waiting:
        proc.says("holding")
        proc.says("done")
    assert log(database)[:2] == ["worker 1", "request"]
    assert sorted(log(database)[2:]) == ["worker 2", "worker 3"]
    web.close()


def test_background_work_gives_way_while_a_request_wants_a_turn(database, processes):
    web = connect(database)
    web.execute("INSERT INTO log (who) VALUES ('request')")  # a turn, until commit
    worker = processes(GIVING_WAY, database)
    worker.says("ready")
    wait_until(worker.blocked_on_a_file_lock, 10, "the worker to wait")
    assert worker.proc.poll() is None
    web.commit()
    worker.says("went on")
    assert turn_is_free(database)


def test_a_killed_holder_leaves_no_turn_behind(database, processes):
    holder = processes(BACKGROUND_WRITER, database, "killed")
    holder.says("asking")
    holder.says("holding")
    assert not turn_is_free(database)
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(10)
    web = connect(database)
    web.execute("INSERT INTO log (who) VALUES ('request')")
    web.commit()
    assert log(database) == ["request"]  # the killed transaction never committed
    web.close()


def test_a_task_interrupted_while_it_waits_for_a_turn_holds_none(database, processes):
    web = connect(database)
    web.execute("INSERT INTO log (who) VALUES ('request')")
    worker = processes(INTERRUPTED, database)
    worker.says("asking")
    wait_until(worker.blocked_on_a_file_lock, 10, "the worker to wait for its turn")
    worker.proc.send_signal(signal.SIGUSR1)
    worker.says("interrupted")
    web.commit()
    assert turn_is_free(database)
    worker.tell()  # the worker's next task writes as usual
    worker.says("done")
    assert log(database) == ["request", "next task"]
    web.close()


@pytest.mark.parametrize("end", ["commit", "rollback", "close", "failed insert", "DDL"])
def test_every_way_a_transaction_ends_gives_the_turn_back(database, end):
    conn = connect(database)
    if end == "DDL":  # a statement that leaves no transaction open
        conn.execute("CREATE TABLE other (a)")
    else:
        conn.execute("INSERT INTO log (who) VALUES ('x')")
        assert not turn_is_free(database)
        if end == "failed insert":
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute("INSERT INTO log (id, who) VALUES (1, 'again')")
            assert not turn_is_free(database)  # still in its transaction
            conn.rollback()
        else:
            getattr(conn, end)()
    assert turn_is_free(database)
    conn.close()


def test_reads_take_no_turn_and_a_whole_transaction_keeps_one(database):
    conn = connect(database)
    conn.execute("SELECT count(*) FROM log").fetchall()
    assert turn_is_free(database)
    conn.take_turn()  # the task store's compare-and-set: read, then write on what it read
    conn.execute("SELECT count(*) FROM log").fetchall()
    assert not turn_is_free(database)
    conn.execute("INSERT INTO log (who) VALUES ('x')")
    conn.commit()
    assert turn_is_free(database)
    conn.close()


def test_threads_of_one_process_take_turns(database):
    first, second = connect(database), connect(database)
    first.execute("INSERT INTO log (who) VALUES ('first')")
    thread, done = write_in_thread(second, "second")
    wait_until(lambda: waiting_for_locks(os.getpid()) == 1, 10,
               "the second thread to wait for a turn")
    assert not done.is_set()
    first.commit()
    thread.join(10)
    assert done.is_set() and log(database) == ["first", "second"]
    first.close()
    second.close()


@pytest.mark.parametrize(("sql", "write"), [
    ("SELECT 1", False), ("  select * from log", False), ("PRAGMA busy_timeout=1", False),
    ("BEGIN", False), ("BEGIN DEFERRED", False), ("BEGIN IMMEDIATE", True),
    ("SAVEPOINT a", False), ("RELEASE a", False), ("ROLLBACK", False), ("COMMIT", False),
    ("WITH x AS (SELECT 1) SELECT * FROM x", False),
    ("WITH x AS (SELECT 1) INSERT INTO log (who) SELECT 'a' FROM x", True),
    ("INSERT INTO log VALUES (1, 'a')", True), ("update log set who = 'b'", True),
    ("DELETE FROM log", True), ("REPLACE INTO log VALUES (1, 'a')", True),
    ("CREATE TABLE t (a)", True), ("DROP TABLE t", True), ("ANALYZE", True),
])
def test_which_statements_take_a_turn(sql, write):
    assert sqlite_turns.is_write(sql) is write
