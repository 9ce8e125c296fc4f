"""SQLite's one write lock, taken in turns across processes, requests first.

Every write transaction on a database file takes a turn on a file lock beside it
(`<db>.writers`) before SQLite's own lock. The kernel hands a file lock to a waiter the
moment it is freed, where SQLite's own wait polls (sleeping 1, 2, 5, 10 ms): the lock sat
free while writers slept, and a request's write polling against four busy workers lost to
them again and again (a 3-post store waited 3.5 or 8.6 ms, one sleep step or two, in the
slowest tenth of a loaded run).

Web processes go first: while one of them wants a turn it holds `<db>.first` shared, and a
background process (a worker, `background()`) holding a turn gives it back and waits until no
web process wants one. A request's write then waits for the one transaction under way, not
for every worker in line. Each connection has open files of its own for this, so its
threads and processes alike are ordered by the kernel.

The driver connection class (`Connection`, given to sqlite3 as its factory) takes the turn at
a transaction's first write and gives it back when the transaction ends; code that reads
and then writes on what it read (the task store's compare-and-set) holds a turn for its
whole transaction (`Connection.take_turn`).
"""
from __future__ import annotations

import fcntl
import functools
import os
import re
import sqlite3
import threading

_background = False


def background() -> None:
    """This process's writes wait for the web's (a worker's, set once at start)."""
    global _background
    _background = True


class Turn:
    """One connection's turns: its own open files, so that the kernel alone says who holds
    what (two open files of one process exclude each other as two processes do). Taking and
    giving back are each a call or two that a failure anywhere can undo by giving back again
    (unlocking is a no-op when nothing is held): a task interrupted while it waits for a turn
    (a revoke, a timeout: an exception raised in its thread) leaves none held."""

    def __init__(self, database: str) -> None:
        self._turn = _lock_file(f"{database}.writers")
        self._first = _lock_file(f"{database}.first")

    def take(self) -> None:
        try:
            if _background:
                self._take_behind_the_web()
            else:
                fcntl.flock(self._first, fcntl.LOCK_SH)  # a web process wants a turn
                fcntl.flock(self._turn, fcntl.LOCK_EX)
        except BaseException:
            self.give()
            raise

    def give(self) -> None:
        fcntl.flock(self._turn, fcntl.LOCK_UN)
        fcntl.flock(self._first, fcntl.LOCK_UN)

    def close(self) -> None:
        self.give()
        os.close(self._turn)
        os.close(self._first)

    def _take_behind_the_web(self) -> None:
        while True:
            fcntl.flock(self._turn, fcntl.LOCK_EX)
            if _nobody_waits(self._first):
                return
            fcntl.flock(self._turn, fcntl.LOCK_UN)  # a web process wants it: it goes first
            _wait_for_nobody(self._first)


def _lock_file(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _nobody_waits(first: int) -> bool:
    try:
        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(first, fcntl.LOCK_UN)
    return True


def _wait_for_nobody(first: int) -> None:
    try:
        fcntl.flock(first, fcntl.LOCK_EX)
    finally:
        fcntl.flock(first, fcntl.LOCK_UN)


_giving_way = threading.local()  # per thread: its own open file of each `<db>.first`


def give_way() -> None:
    """Between steps of background work: wait while a web process wants a write turn. The
    worker holding the one it waits for then finishes without this one's CPU work beside
    it: four busy workers on two cores took turns on them, and a holder could wait a whole
    time slice for a core while a request waited for it. In a web process, nothing."""
    if not _background:
        return
    files = getattr(_giving_way, "files", None)
    if files is None or _giving_way.pid != os.getpid():
        files = _giving_way.files = {}
        _giving_way.pid = os.getpid()
    for database in list(_databases):
        first = files.get(database)
        if first is None:
            first = files[database] = _lock_file(f"{database}.first")
        _wait_for_nobody(first)  # at once when nobody waits: the same two calls as a probe


_databases: set[str] = set()  # the database files this process has written


def database_file(database: str) -> str | None:
    """The file whose writers take turns, or None (an in-memory database)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database)


_READS = ("SELECT", "PRAGMA", "EXPLAIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "END")
_WRITE_WORD = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def is_write(sql: str) -> bool:
    """Whether a statement takes SQLite's write lock (a deferred BEGIN does not)."""
    head = sql.lstrip().upper()
    if head.startswith("WITH"):
        return _WRITE_WORD.search(sql) is not None
    if head.startswith("BEGIN"):
        return "IMMEDIATE" in head[:30] or "EXCLUSIVE" in head[:30]
    return not head.startswith(_READS)


class Connection(sqlite3.Connection):
    """sqlite3's connection, taking a write turn at a transaction's first write and giving it
    back when the transaction ends (commit, rollback, close, or a statement that leaves
    none open, as DDL and autocommit do)."""

    def __init__(self, database, *args, **kwargs) -> None:
        super().__init__(database, *args, **kwargs)
        self._database = database_file(os.fsdecode(database))
        self._turn: Turn | None = None
        self._holding = False
        self._whole = False  # taken with `take_turn`: until the transaction ends, reads or not

    def cursor(self, factory=None):
        return super().cursor(factory or Cursor)

    # sqlite3's own shortcuts make their cursor without calling `cursor`
    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, parameters, /):
        return self.cursor().executemany(sql, parameters)

    def before(self, sql: str) -> None:
        if self._database is not None and not self._holding and is_write(sql):
            self._take(whole=False)

    def after(self) -> None:
        if self._holding and not self._whole and not self.in_transaction:
            self._give()

    def take_turn(self) -> None:
        """A turn from now until the transaction ends (commit or rollback), reads included."""
        if self._database is not None and not self._holding:
            self._take(whole=True)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._ended()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._ended()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._turn is not None:
                self._holding = False
                self._turn.close()
                self._turn = None

    def __del__(self) -> None:  # dropped without close: no turn may outlive it
        turn = getattr(self, "_turn", None)
        if turn is not None:
            turn.close()

    def _ended(self) -> None:
        if self._holding and not self.in_transaction:
            self._give()

    def _take(self, whole: bool) -> None:
        if self._turn is None:
            self._turn = Turn(self._database)
            _databases.add(self._database)
        # Marked first: whatever interrupts the taking, the transaction's end gives it back.
        self._holding, self._whole = True, whole
        self._turn.take()

    def _give(self) -> None:
        self._holding = self._whole = False
        self._turn.give()


class Cursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        self.connection.before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after()

    def executemany(self, sql, parameters, /):
        self.connection.before(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            self.connection.after()
