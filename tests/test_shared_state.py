"""Changes to the values every process shares (the queue's pauses, autonomous operations)
made at the same moment: each decides on what the one before it wrote, on SQLite and on
PostgreSQL (where deleting and inserting the row from two transactions at once answered a
duplicate key, a 500, to the second)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from jobs import autonomous, calendar_feed, pause

RACERS = 8


def _at_once(n: int, work):
    """Run `work(i)` on n threads released together; every result (an exception fails)."""
    gate = threading.Barrier(n)

    def run(i):
        gate.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_starting_autonomous_operations_at_once_changes_it_once(db):
    for rounds in range(3):  # from no row at all, then from a row that says "off"
        results = _at_once(RACERS, lambda i: autonomous.set_enabled(db, True, f"m{i}@example.com"))
        assert sum(r["changed"] for r in results) == 1
        assert all(r["enabled"] for r in results)
        by = {r["changed_by"] for r in results}
        assert len(by) == 1  # everyone reports the one change that was made
        results = _at_once(RACERS, lambda i: autonomous.set_enabled(db, False, f"m{i}@example.com"))
        assert sum(r["changed"] for r in results) == 1
    assert autonomous.status(db)["enabled"] is False


def test_pausing_types_at_once_keeps_every_pause(db):
    types = [f"type{i}" for i in range(RACERS)]
    results = _at_once(RACERS, lambda i: pause.pause(db, types[i], f"m{i}@example.com"))
    assert all(changed for _, changed in results)
    assert set(pause.read(db)) == set(types)  # no change was lost to another's write
    results = _at_once(RACERS, lambda i: pause.resume(db, types[i]))
    assert all(changed for _, changed in results)
    assert pause.read(db) == {}


def test_a_calendar_token_made_by_requests_at_once_is_one_token(db):
    # The account page makes it on first view; two views at once both read "none" and the
    # second insert failed on the key (a 500 found by the fuzz run on PostgreSQL).
    tokens = _at_once(RACERS, lambda i: calendar_feed.feed_token(db, 42))
    assert len(set(tokens)) == 1
    assert calendar_feed.feed_token(db, 42) == tokens[0]
    assert calendar_feed.rotate_token(db, 42) != tokens[0]
