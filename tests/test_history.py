"""History at scale: keyset pages, id-prefix search, stored aggregates, stats windows and
retention, on SQLite and PostgreSQL (the timing goals are measured by bench/bench_history.py)."""
from __future__ import annotations

import datetime as dt
import secrets

import pytest
import sqlalchemy
from sqlalchemy import func, insert, select

from jobs import queries, retention, task_stats
from jobs.db import make_engine
from jobs.events import MemoryEventBus
from jobs.models import (FAILURE, PENDING, RETRY, REVOKED, STARTED, SUCCESS, posts, state,
                         task_history, tasks, utcnow)
from jobs.models import task_stats as stats_rows
from jobs.runtime import build_runtime
from jobs.settings import SettingsError, load_settings
from jobs.tracking import Tracker
from tests.support import wait_until

FINAL = (SUCCESS, FAILURE, REVOKED)




def _task(task_id: str, *, status: str = SUCCESS, enqueued: dt.datetime, run: float = 1.0,
          wait: float = 0.5, task_type: str = "status_check", owner: str = "a@example.com") -> dict:
    started = enqueued + dt.timedelta(seconds=wait)
    final = status in FINAL
    return {"id": task_id, "type": task_type, "owner": owner, "params": {}, "status": status,
            "progress_done": 0, "progress_total": 0, "result": {"big": "x" * 100} if final else None,
            "error": None, "attempts": 1, "max_attempts": 3, "worker": None, "terminate": False,
            "parent_id": None, "enqueued_at": enqueued,
            "started_at": started if final or status == STARTED else None,
            "finished_at": started + dt.timedelta(seconds=run) if final else None,
            "updated_at": enqueued}


def _ids(page: queries.TaskPage) -> list[str]:
    return [t["task_id"] for t in page.tasks]


def test_keyset_pages_walk_the_history_newest_first_both_ways(db):
    base = utcnow() - dt.timedelta(hours=1)
    rows = [_task(f"{i:04x}" + secrets.token_hex(10), status=FINAL[i % 3],
                  enqueued=base + dt.timedelta(seconds=i // 2))  # pairs share a time: ties by id
            for i in range(23)]
    rows.append(_task("ffff" + secrets.token_hex(10), status=PENDING, enqueued=base))
    with db.begin() as conn:
        conn.execute(insert(tasks), rows)
    expected = [r["id"] for r in sorted((r for r in rows if r["status"] in FINAL),
                                        key=lambda r: (r["enqueued_at"], r["id"]), reverse=True)]

    pages, page = [], queries.task_page(db, statuses=FINAL, per_page=5)
    assert page.newer is None and page.total == 23 and page.total_exact
    assert "result" not in page.tasks[0]  # lists leave the blobs out
    while True:
        pages.append(page)
        if page.older is None:
            break
        page = queries.task_page(db, statuses=FINAL, per_page=5, before=page.older)
    assert [i for p in pages for i in _ids(p)] == expected
    assert [len(p.tasks) for p in pages] == [5, 5, 5, 5, 3]
    # Page numbers (offsets) and cursors agree; so do the way back and the way forward.
    assert _ids(queries.task_page(db, statuses=FINAL, per_page=5, page=4)) == _ids(pages[3])
    back = queries.task_page(db, statuses=FINAL, per_page=5, after=pages[2].newer)
    assert _ids(back) == _ids(pages[1]) and back.newer is not None and back.older is not None
    assert queries.task_page(db, statuses=FINAL, per_page=5, after=pages[1].newer).newer is None
    # One status, one owner: the same order from one index range.
    failures = queries.task_page(db, statuses=(FAILURE,), owner="a@example.com", per_page=50)
    assert _ids(failures) == [i for i in expected if any(r["id"] == i and r["status"] == FAILURE
                                                         for r in rows)]


def test_counts_stop_at_the_limit(db, monkeypatch):
    base = utcnow() - dt.timedelta(hours=1)
    with db.begin() as conn:
        conn.execute(insert(tasks), [_task(secrets.token_hex(12), enqueued=base) for _ in range(12)])
    monkeypatch.setattr(queries, "COUNT_LIMIT", 10)
    page = queries.task_page(db, per_page=5)
    assert (page.total, page.total_exact, len(page.tasks)) == (10, False, 5)


def test_cursor_must_be_one_the_list_gave():
    for bad in ("", "abc", "12-", "-abc", "x1-abc", "1-" + "a" * 65):
        with pytest.raises(ValueError):
            queries.decode_cursor(bad)


def test_id_prefix_is_an_exact_range_not_a_pattern(db):
    base = utcnow() - dt.timedelta(hours=1)
    ids = ["abc123" + "0" * 18, "abd000" + "0" * 18, "weekly_report-2026-W49", "weekly%report"]
    with db.begin() as conn:
        conn.execute(insert(tasks), [_task(i, enqueued=base) for i in ids])
    assert _ids(queries.task_page(db, id_prefix="ABC")) == [ids[0]]  # hex ids: any case
    assert _ids(queries.task_page(db, id_prefix="ab")) == sorted(ids[:2], reverse=True)
    assert _ids(queries.task_page(db, id_prefix="weekly_report-2026-W")) == [ids[2]]
    assert _ids(queries.task_page(db, id_prefix="weekly%")) == [ids[3]]  # no wildcards
    assert _ids(queries.task_page(db, id_prefix="weekly_r")) == [ids[2]]
    # Prefixes whose next character is no character (past U+10FFFF) or one no text may hold
    # (a lone surrogate after U+D7FF): nothing matches, and nothing fails.
    for odd in ("\U0010ffff", "w\U0010ffff", "a\ud7ff", "\uffff"):
        assert _ids(queries.task_page(db, id_prefix=odd)) == []


def _finish(tracker: Tracker, *, status: str, run: float, wait: float, task_type: str = "status_check"):
    record = tracker.create(task_type=task_type, owner="a@example.com", params={}, max_attempts=3)
    now = utcnow()
    enqueued = now - dt.timedelta(seconds=run + wait)
    with tracker.db.begin() as conn:  # the times the run would have had
        conn.execute(tasks.update().where(tasks.c.id == record["task_id"]).values(enqueued_at=enqueued))
    started = enqueued + dt.timedelta(seconds=wait)
    tracker.transition(record["task_id"], STARTED, expect=(PENDING,), started_at=started, attempts=1)
    tracker.transition(record["task_id"], STARTED, expect=(STARTED,), progress_done=1, progress_total=2)
    assert tracker.transition(record["task_id"], status, expect=(STARTED,), finished_at=now)
    # A second, late final change does not happen, so it is not counted either.
    assert tracker.transition(record["task_id"], status, expect=(STARTED,), finished_at=now) is None
    return record["task_id"]


def test_a_task_is_counted_once_when_it_finishes_and_windows_read_the_counts(db):
    tracker = Tracker(db, MemoryEventBus(1000))
    runs = [0.01 * 1.5 ** i for i in range(20)]  # 10 ms … 22 s
    for i, run in enumerate(runs):
        _finish(tracker, status=FAILURE if i % 5 == 0 else SUCCESS, run=run, wait=run / 10)
    tracker.create(task_type="status_check", owner="a@example.com", params={}, max_attempts=3)

    stats = task_stats.window_stats(db, "1h")
    assert stats["counts"] == {"status_check": {SUCCESS: 16, FAILURE: 4}}
    assert stats["throughput"]["finished"] == 20 and stats["failures_by_type"] == {"status_check": 4}
    assert sum(stats["series"]["completed"]) == 16 and sum(stats["series"]["failed"]) == 4
    ordered = sorted(runs)
    for name, rank in (("p50", 10), ("p95", 19), ("p99", 20)):  # nearest rank, within 9 %
        assert stats["run_time"]["status_check"][name] == pytest.approx(ordered[rank - 1], rel=0.09)
        assert stats["wait_time"]["status_check"][name] == pytest.approx(ordered[rank - 1] / 10, rel=0.09)
    for window in ("24h", "7d", "30d"):
        assert task_stats.window_stats(db, window)["counts"] == stats["counts"]

    assert queries.counts(db) == {"status_check": {SUCCESS: 16, FAILURE: 4, PENDING: 1}}
    now = utcnow()
    summary = queries.queue_summary(db, now=now)
    assert (summary["failures_last_hour"], summary["total_tracked"], summary["waiting"]) == (4, 21, 1)
    assert queries.queue_summary_and_counts(db, now=now) == (summary, queries.counts(db))


def test_folding_moves_old_minutes_into_hours_and_days_keeping_every_sum(db):
    now = utcnow()
    finished = [now - dt.timedelta(minutes=m) for m in (1, 30, 200, 300, 60 * 24 * 3, 60 * 24 * 10)]
    with db.begin() as conn:
        for i, moment in enumerate(finished):
            task_stats.record(conn, {"type": "weekly_report", "status": SUCCESS,
                                     "enqueued_at": moment - dt.timedelta(seconds=3),
                                     "started_at": moment - dt.timedelta(seconds=2), "finished_at": moment})
    before = {w: task_stats.window_stats(db, w, now) for w in task_stats.WINDOWS}
    assert [before[w]["throughput"]["finished"] for w in ("1h", "24h", "7d", "30d")] == [2, 4, 5, 6]

    assert task_stats.fold(db, now) > 0
    assert task_stats.fold(db, now) == 0  # nothing left to fold
    with db.connect() as conn:
        periods = dict(conn.execute(select(stats_rows.c.period, func.count())
                                    .where(stats_rows.c.metric == "n")
                                    .group_by(stats_rows.c.period)).all())
    assert periods == {60: 2, 3600: 2, 86400: 2}
    task_stats._forget()
    for window, result in before.items():
        after = task_stats.window_stats(db, window, now)
        assert (after["counts"], after["run_time"]) == (result["counts"], result["run_time"]), window


def test_a_database_from_before_the_aggregates_is_counted_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    old = utcnow() - dt.timedelta(days=3)
    with engine.begin() as conn:
        conn.execute(insert(tasks), [_task(secrets.token_hex(12), enqueued=old) for _ in range(7)])
        conn.execute(stats_rows.delete())
        conn.execute(state.delete().where(state.c.key == task_stats.STATE_KEY))  # as an old version left it
    engine.dispose()
    for _ in range(2):  # every process start looks; only the first counts
        engine = make_engine(url)
        assert queries.counts(engine) == {"status_check": {SUCCESS: 7}}
        engine.dispose()


def test_retention_prunes_old_finished_tasks_in_batches_and_keeps_posts_and_stats(db):
    now = utcnow()
    old, recent = now - dt.timedelta(days=100), now - dt.timedelta(days=10)
    rows = ([_task(f"old{i}", enqueued=old, status=FINAL[i % 3]) for i in range(7)]
            + [_task(f"new{i}", enqueued=recent) for i in range(3)]
            + [_task("stuck", enqueued=old, status=PENDING)])  # unfinished: never pruned
    with db.begin() as conn:
        conn.execute(insert(tasks), rows)
        conn.execute(insert(task_history), [{"task_id": r["id"], "at": old, "status": PENDING,
                                             "attempt": 0} for r in rows])
        conn.execute(insert(posts), [{"batch_id": "old0", "seq": 0, "owner": "a@example.com",
                                      "platform": "mastodon", "text": "kept", "length": 4,
                                      "limit": 500, "writer": "offline", "status": "draft",
                                      "created_at": old}])
    task_stats.count_tasks(db)
    before = queries.counts(db)

    assert retention.prune(db, 0)["pruned"] == 0  # 0 keeps everything
    seen = []
    result = retention.prune(db, 90, batch=3, progress=lambda done, total: seen.append((done, total)))
    assert result["pruned"] == 7
    assert seen == [(0, 7), (3, 7), (6, 7), (7, 7)]
    with db.connect() as conn:
        left = set(conn.execute(select(tasks.c.id)).scalars())
        timelines = set(conn.execute(select(task_history.c.task_id)).scalars())
        kept_posts = conn.execute(select(func.count()).select_from(posts)).scalar_one()
    assert left == timelines == {"new0", "new1", "new2", "stuck"}
    assert kept_posts == 1
    assert queries.counts(db) == before  # the aggregates still count the pruned tasks
    assert retention.prune(db, 90)["pruned"] == 0


def test_retention_runs_as_a_tracked_task_with_progress(tmp_path):
    rt = build_runtime(load_settings(data_dir=tmp_path, task_retention_days=30))
    try:
        with rt.db.begin() as conn:
            conn.execute(insert(tasks), [_task(f"old{i}", enqueued=utcnow() - dt.timedelta(days=40))
                                         for i in range(5)])
        assert "schedule_retention" in {t.name for t in rt.huey._registry.periodic_tasks}
        record = rt.submit("retention", "system", {"days": 30})
        rt.executor.run(record["task_id"], "retention")
        rt.tracker.flush_outcomes()  # the outcome is written with the next claim, or soon
        done = rt.tracker.get(record["task_id"])
        assert done["status"] == SUCCESS, done
        assert done["result"]["pruned"] == 5 and done["progress"] == {"done": 5, "total": 5}
    finally:
        rt.executor.stop()
        rt.close()


def test_retention_setting_keeps_at_least_the_reports_week():
    assert load_settings(task_retention_days=0).task_retention_days == 0
    with pytest.raises(SettingsError, match="TASK_RETENTION_DAYS"):
        load_settings(task_retention_days=3)


def test_stats_window_and_list_cursor_over_http(stack):
    client = stack.client
    for window in task_stats.WINDOWS:
        body = client.get(f"/api/tasks/stats?window={window}").json()
        assert body["window"] == window
        assert {"backend", "thread_pool", "celery", "queue", "tasks", "throughput",
                "failures_by_type", "run_time", "wait_time", "series"} <= body.keys()
    bad = client.get("/api/tasks/stats?window=2h")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_window"
    assert client.get("/stats?window=2h").status_code == 400
    assert client.get("/stats?window=7d").status_code == 200

    first = client.get("/api/tasks?per_page=1").json()
    assert {"tasks", "total", "total_exact", "page", "per_page", "older", "newer"} <= first.keys()
    if first["older"]:
        second = client.get(f"/api/tasks?per_page=1&before={first['older']}").json()
        assert second["tasks"][0]["task_id"] != first["tasks"][0]["task_id"]
        assert client.get(f"/api/tasks?per_page=1&after={second['newer']}").json()["tasks"] == first["tasks"]
    schedules = {s["name"]: s for s in client.get("/api/schedules").json()["schedules"]}
    assert schedules["retention"]["enabled"] and schedules["retention"]["next_run"]
    bad = client.get("/api/tasks?before=yesterday")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_query"
    # An empty cursor (a link or form with the field left blank) is no cursor: the first page.
    for blank in ("before=", "after=", "before=&after=", "status=&type=&owner="):
        assert client.get(f"/api/tasks?per_page=1&{blank}").json()["tasks"] == first["tasks"]
    # A filter value that no task can have is a mistake to report, not an empty list.
    for wrong in ("status=pending", "status=BOGUS", "type=bogus"):
        bad = client.get(f"/api/tasks?{wrong}")
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_query", wrong
        assert wrong.partition("=")[0] in bad.json()["message"]


def test_latest_of_a_type_is_the_newest_whatever_its_status(db):
    base = utcnow() - dt.timedelta(hours=1)
    rows = [_task(f"d{i}", task_type="daily_operations", status=s, enqueued=base + dt.timedelta(minutes=i))
            for i, s in enumerate((SUCCESS, FAILURE, PENDING, REVOKED))]
    with db.begin() as conn:
        conn.execute(insert(tasks), rows)
        assert queries.latest_of_type(conn, "daily_operations").id == "d3"
        assert queries.latest_of_type(conn, "weekly_report") is None


def test_oldest_waiting_is_the_first_pending_or_retrying_task_read_in_one_statement(db):
    base = utcnow().replace(microsecond=0) - dt.timedelta(hours=1)
    with db.begin() as conn:
        assert queries.oldest_waiting(conn) is None
        conn.execute(insert(tasks), [
            _task("old-done", status=SUCCESS, enqueued=base),  # finished: not waiting
            _task("running", status=STARTED, enqueued=base + dt.timedelta(minutes=1)),
            _task("pending", status=PENDING, enqueued=base + dt.timedelta(minutes=5)),
            _task("retrying", status=RETRY, enqueued=base + dt.timedelta(minutes=3))])
        statements: list[str] = []
        sqlalchemy.event.listen(conn, "before_cursor_execute",
                                lambda _c, _cur, sql, *_a: statements.append(sql))
        assert queries.oldest_waiting(conn) == base + dt.timedelta(minutes=3)
        assert len(statements) == 1, statements
        conn.execute(tasks.delete().where(tasks.c.id == "retrying"))
        assert queries.oldest_waiting(conn) == base + dt.timedelta(minutes=5)


def test_unfinished_tasks_are_counted_from_the_type_index_alone(db):
    base = utcnow() - dt.timedelta(hours=1)
    with db.begin() as conn:
        conn.execute(insert(tasks), [
            *(_task(f"wait{i}", status=PENDING, enqueued=base) for i in range(3)),
            _task("retry", status=RETRY, enqueued=base, task_type="content_generation"),
            _task("run", status=STARTED, enqueued=base, task_type="content_generation"),
            *(_task(f"done{i}", status=SUCCESS, enqueued=base) for i in range(4))])
    with db.connect() as conn:
        assert queries._unfinished(conn) == {("status_check", PENDING): 3,
                                             ("content_generation", RETRY): 1,
                                             ("content_generation", STARTED): 1}
        if db.dialect.name == "sqlite":  # a deep backlog is not read row by row
            sql = str(queries._COUNT_UNFINISHED.compile(db, compile_kwargs={"literal_binds": True}))
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            reads = [step for step in plan if " tasks" in step]
            assert reads and all("COVERING INDEX ix_tasks_type_keyset" in step for step in reads), plan


def test_a_slow_count_of_a_deep_backlog_is_reused_then_renewed_in_the_background(db, monkeypatch):
    monkeypatch.setattr(queries, "_counts", queries._Counts())
    monkeypatch.setattr(queries, "DEEP_BACKLOG", 3)  # as deep as this test's
    monkeypatch.setattr(queries, "REUSE", 1e9)
    base = utcnow() - dt.timedelta(hours=1)

    def add(*names: str) -> None:
        with db.begin() as conn:
            conn.execute(insert(tasks), [_task(n, status=PENDING, enqueued=base) for n in names])

    def waiting() -> int:
        with db.connect() as conn:
            return queries.queue_summary(conn, now=utcnow())["waiting"]
    add("a", "b")
    assert waiting() == 2
    add("c")
    assert waiting() == 3  # shallower than DEEP_BACKLOG: counted at every call
    add("d")
    assert waiting() == 3  # the count of 3 is given again while it is fresh
    monkeypatch.setattr(queries, "REUSE", 0)  # now it is old: renewed in the background
    wait_until(lambda: waiting() == 4, 10, "the background count")
