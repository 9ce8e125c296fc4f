"""Stored aggregates of finished tasks, and the stats read from them.

A task is counted once, when it reaches a final state, in the same transaction as that
change (`record`): its count per (minute, type, status), and its run and wait times as one
step in fixed log-spaced histograms per (minute, type). Stats over a window then sum a
bounded number of rows whatever the size of the history, and survive retention. `fold`
(a periodic job) merges minutes into hours and hours into days as they age; every level is
summed the same way, so a window simply reads the rows that start inside it (a coarse
period straddling the window's start is left out: windows are as exact as their step).
"""
from __future__ import annotations

import datetime as dt
import math
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, TextClause, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from jobs.db import reading
from jobs.models import FAILURE, SUCCESS, UTCDateTime, iso, state, task_stats, tasks, utcnow

MINUTE, HOUR, DAY = 60, 3600, 86400
# Bucket b holds durations in (BASE·RATIO^(b-1), BASE·RATIO^b]: a percentile read from it
# (its geometric middle) is within 9 % of the true value, from 1 ms to beyond 30 days.
BASE, RATIO, LAST_BUCKET = 0.001, 2 ** 0.25, 127
COUNT, RUN, WAIT = "n", "run", "wait"
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
# window → (length, chart step)
WINDOWS = {"1h": (HOUR, MINUTE), "24h": (DAY, HOUR), "7d": (7 * DAY, DAY), "30d": (30 * DAY, DAY)}
# (finer period, coarser period, how long the finer rows are kept): the 1-hour window reads
# minutes, the 24-hour window hours.
FOLDS = ((MINUTE, HOUR, dt.timedelta(hours=2)), (HOUR, DAY, dt.timedelta(hours=26)))
STATE_KEY = "task_stats"


def bucket_of(seconds: float) -> int:
    if seconds <= BASE:
        return 0
    return min(LAST_BUCKET, math.ceil(math.log(seconds / BASE, RATIO) - 1e-9))


def bucket_value(bucket: int) -> float:
    """The duration a bucket stands for: the geometric middle of its bounds."""
    return BASE / 2 if bucket <= 0 else BASE * RATIO ** (bucket - 0.5)


def nearest_rank(q: float, total: int) -> int:
    """The one percentile rule: the q-quantile of `total` ordered values is the value of
    this rank (1-based, nearest rank: no interpolation)."""
    return max(1, math.ceil(q * total))


def percentile(values: Iterable[float], q: float) -> float:
    """The q-quantile of a sample by that rule (NaN for no values): for benchmarks."""
    ordered = sorted(values)
    return ordered[nearest_rank(q, len(ordered)) - 1] if ordered else float("nan")


def percentiles(histogram: Mapping[int, int]) -> dict[str, Any]:
    """{"count", "p50", "p95", "p99"} in seconds from {bucket: count}, by `nearest_rank`."""
    total = sum(histogram.values())
    result: dict[str, Any] = {"count": total}
    ordered = sorted(histogram.items())
    for name, q in QUANTILES.items():
        rank, seen = nearest_rank(q, total), 0
        for bucket, n in ordered:
            seen += n
            if seen >= rank:
                result[name] = round(bucket_value(bucket), 4)
                break
        else:
            result[name] = None
    return result


# -- writing --

def _upsert(rows: int):
    values = ", ".join(f"(:m{i}, :start, :period, :type, :status{i}, :b{i}, :n)" for i in range(rows))
    return text(
        "INSERT INTO task_stats (metric, period_start, period, type, status, bucket, n) "
        f"VALUES {values} ON CONFLICT (metric, period_start, period, type, status, bucket) "
        "DO UPDATE SET n = task_stats.n + excluded.n"
    ).bindparams(bindparam("start", type_=UTCDateTime))


_COUNT_ONLY, _WITH_TIMES = _upsert(1), _upsert(3)


def _entries(row: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(metric, status, bucket) for one finished task; histograms are per type only."""
    entries = [(COUNT, row["status"], -1)]
    started, finished = row["started_at"], row["finished_at"]
    if started is not None and finished is not None:
        entries.append((RUN, "", bucket_of((finished - started).total_seconds())))
        entries.append((WAIT, "", bucket_of((started - row["enqueued_at"]).total_seconds())))
    return entries


def record(conn: Connection, row: Mapping[str, Any]) -> None:
    """Count a task that has just reached a final state: one statement, in the caller's
    transaction, so the count moves with the state change."""
    conn.execute(*record_statement(row))


def record_statement(row: Mapping[str, Any]) -> tuple[TextClause, dict[str, Any]]:
    """The statement and parameters of `record` (the tracker's hot path runs them on its
    own cursor)."""
    finished = row["finished_at"] or utcnow()
    entries = _entries(row)
    params: dict[str, Any] = {"start": finished.replace(second=0, microsecond=0), "period": MINUTE,
                              "type": row["type"], "n": 1}
    for i, (metric, status, bucket) in enumerate(entries):
        params.update({f"m{i}": metric, f"status{i}": status, f"b{i}": bucket})
    return (_WITH_TIMES if len(entries) == 3 else _COUNT_ONLY), params


def _add(conn: Connection, counts: Mapping[tuple, int]) -> None:
    """Add {(metric, period_start, period, type, status, bucket): n} to the stored rows."""
    if counts:
        conn.execute(_COUNT_ONLY, [
            {"m0": m, "start": start, "period": period, "type": t, "status0": s, "b0": b, "n": n}
            for (m, start, period, t, s, b), n in counts.items()])


def _floor(moment: dt.datetime, period: int) -> dt.datetime:
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % period, dt.UTC)


def _period_for(finished: dt.datetime, now: dt.datetime) -> int:
    """The level a task finished at `finished` belongs to once folding has caught up."""
    period = MINUTE
    for finer, coarser, keep in FOLDS:
        if period == finer and _floor(finished, coarser) + dt.timedelta(seconds=coarser) <= now - keep:
            period = coarser
    return period


def fold(db: Engine, now: dt.datetime | None = None) -> int:
    """Merge minute rows older than two hours into hours, hour rows older than a day into
    days. Returns the rows merged. Safe to run from several processes at once."""
    now = now or utcnow()
    merged = 0
    with db.begin() as conn:
        _lock(conn)
        for finer, coarser, keep in FOLDS:
            cutoff = _floor(now - keep, coarser)
            old = (task_stats.c.period == finer, task_stats.c.period_start < cutoff)
            rows = conn.execute(select(task_stats).where(*old)).mappings().all()
            counts: Counter = Counter()
            for r in rows:
                counts[(r["metric"], _floor(r["period_start"], coarser), coarser, r["type"],
                        r["status"], r["bucket"])] += r["n"]
            conn.execute(delete(task_stats).where(*old))
            _add(conn, counts)
            merged += len(rows)
    return merged


def _lock(conn: Connection) -> None:
    """Serialise folding: the first write of the transaction takes the state row's lock
    (PostgreSQL) or the database's (SQLite); the row is made at start-up."""
    conn.execute(update(state).where(state.c.key == STATE_KEY).values(updated_at=utcnow()))


def count_tasks(db: Engine, *, until: dt.datetime | None = None) -> int:
    """Add the finished tasks recorded before `until` to aggregates that hold none of them
    yet (a database from before they existed, a history loaded in bulk). Returns how many."""
    now = utcnow()
    until = until or now
    counts: Counter = Counter()
    n = 0
    with db.connect() as conn:
        rows = conn.execution_options(yield_per=10_000).execute(
            select(tasks.c.type, tasks.c.status, tasks.c.enqueued_at, tasks.c.started_at,
                   tasks.c.finished_at)
            .where(tasks.c.finished_at.is_not(None), tasks.c.finished_at < until)).mappings()
        for row in rows:
            period = _period_for(row["finished_at"], now)
            start = _floor(row["finished_at"], period)
            for metric, status, bucket in _entries(row):
                counts[(metric, start, period, row["type"], status, bucket)] += 1
            n += 1
    with db.begin() as conn:
        _add(conn, counts)
    return n


def count_existing_once(db: Engine) -> None:
    """Count, once, the tasks of a database recorded by a version without aggregates. The
    first process to start claims the job; tasks finishing after its claim are counted by
    `record`, so none is counted twice."""
    with db.connect() as conn:
        if conn.execute(select(state.c.key).where(state.c.key == STATE_KEY)).first() is not None:
            return
    claimed_at = utcnow()
    try:
        with db.begin() as conn:
            conn.execute(insert(state).values(key=STATE_KEY, value={"counted_from": iso(claimed_at)},
                                              updated_at=claimed_at))
    except IntegrityError:
        return  # another process claimed it
    count_tasks(db, until=claimed_at)


# -- reading --
#
# Steps that ended more than GRACE ago no longer change (a task is counted in the minute it
# finished, within moments; folding keeps every step's sums), so each process reads a step
# once and keeps its sums: a request costs the rows of the current minute and a few merges,
# not the length of its window.
GRACE = dt.timedelta(seconds=30)
_FINER = {HOUR: MINUTE, DAY: HOUR}
_steps: dict[tuple[int, dt.datetime], "_Slot"] = {}   # (step, start) → a settled step
_sums: dict[str, tuple[tuple, Any]] = {}                 # name → (key, latest sum of settled steps)
_memory_lock = threading.Lock()


@dataclass
class _Slot:
    """What finished in one step: counts per (type, status), histograms per type."""
    counts: Counter = field(default_factory=Counter)
    run: dict[str, Counter] = field(default_factory=dict)
    wait: dict[str, Counter] = field(default_factory=dict)
    _summary: dict | None = None  # the chart's figures, kept once a settled step has them

    def add(self, metric: str, task_type: str, status: str, bucket: int, n: int) -> None:
        if metric == COUNT:
            self.counts[(task_type, status)] += n
        else:
            self.histogram(metric, task_type)[bucket] += n

    def histogram(self, metric: str, task_type: str) -> Counter:
        by_type = self.run if metric == RUN else self.wait
        if task_type not in by_type:
            by_type[task_type] = Counter()
        return by_type[task_type]

    def summary(self) -> dict:
        if self._summary is None:
            self._summary = {
                "completed": sum(n for (_, s), n in self.counts.items() if s == SUCCESS),
                "failed": sum(n for (_, s), n in self.counts.items() if s == FAILURE),
                "run": {t: percentiles(h) for t, h in self.run.items()}}
        return self._summary


def _merged(parts: list[_Slot]) -> _Slot:
    whole = _Slot()
    for part in parts:
        whole.counts.update(part.counts)
        for metric, by_type in ((RUN, part.run), (WAIT, part.wait)):
            for task_type, histogram in by_type.items():
                whole.histogram(metric, task_type).update(histogram)
    return whole


def _remember(name: str, key: tuple, make):
    """The value `make()` gives for `key`, kept under `name` until the key changes."""
    with _memory_lock:
        kept = _sums.get(name)
    if kept is not None and kept[0] == key:
        return kept[1]
    value = make()
    with _memory_lock:
        _sums[name] = (key, value)
    return value


def _forget() -> None:
    """Drop what this process remembers (after rewriting past rows, as tests do)."""
    with _memory_lock:
        _steps.clear()
        _sums.clear()


def all_time_counts(conn: Connection, now: dt.datetime | None = None) -> dict[str, dict[str, int]]:
    """{type: {status: n}} of every task that ever finished (pruned ones included)."""
    boundary = _floor((now or utcnow()) - GRACE, MINUTE)
    t = task_stats.c

    def total(*where) -> Counter:
        return Counter({(task_type, status): int(n) for task_type, status, n in conn.execute(
            select(t.type, t.status, func.sum(t.n)).where(t.metric == COUNT, *where)
            .group_by(t.type, t.status))})
    counts = _remember("all-time", (boundary,), lambda: total(t.period_start < boundary))
    counts = counts + total(t.period_start >= boundary)
    result: dict[str, dict[str, int]] = {}
    for (task_type, status), n in sorted(counts.items()):
        result.setdefault(task_type, {})[status] = n
    return result


def finished_since(since, status: str):
    """How many tasks finished as `status` since `since` (a time, or a bound parameter
    for one): a scalar subquery, to be read with other facts in one statement."""
    return select(func.coalesce(func.sum(task_stats.c.n), 0)).where(
        task_stats.c.metric == COUNT, task_stats.c.period_start >= since,
        task_stats.c.status == status).scalar_subquery()


def _read(conn: Connection, step: int, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, _Slot]:
    """The steps of length `step` in [start, end), from the rows no longer than a step."""
    t = task_stats.c
    slots: dict[dt.datetime, _Slot] = {}
    for period_start, metric, task_type, status, bucket, n in conn.execute(
            select(t.period_start, t.metric, t.type, t.status, t.bucket, t.n).where(
                t.metric.in_((COUNT, RUN, WAIT)), t.period_start >= start, t.period_start < end,
                t.period <= step)):
        key = _floor(period_start, step)
        if key not in slots:
            slots[key] = _Slot()
        slots[key].add(metric, task_type, status, bucket, n)
    return slots


def _span(conn: Connection, step: int, start: dt.datetime, end: dt.datetime,
          now: dt.datetime) -> tuple[list[_Slot], int]:
    """Every step in [start, end), and how many of them (the first ones) have settled."""
    width = dt.timedelta(seconds=step)
    starts = [start + width * i for i in range(round((end - start) / width))]
    settled = [s for s in starts if s + width <= now - GRACE]
    with _memory_lock:
        missing = [s for s in settled if (step, s) not in _steps]
    if missing:
        read = _read(conn, step, missing[0], missing[-1] + width)
        with _memory_lock:
            for s in missing:
                _steps[(step, s)] = read.get(s) or _Slot()
            for key in [k for k in _steps if k[1] < now - dt.timedelta(days=32)]:
                del _steps[key]  # older than any window
    with _memory_lock:
        slots = [_steps[(step, s)] for s in settled]
    return slots + [_unsettled(conn, step, s, now) for s in starts[len(settled):]], len(settled)


def _unsettled(conn: Connection, step: int, start: dt.datetime, now: dt.datetime) -> _Slot:
    """A step still open: its settled finer steps (summed once) and the open ones."""
    if start > now:
        return _Slot()
    if step == MINUTE:
        return _read(conn, MINUTE, start, start + dt.timedelta(minutes=1)).get(start) or _Slot()
    parts, settled = _span(conn, _FINER[step], start, start + dt.timedelta(seconds=step), now)
    closed = _remember(f"open-{step}", (start, settled), lambda: _merged(parts[:settled]))
    return _merged([closed, *parts[settled:]])


def window_stats(db: Engine | Connection, window: str = "1h",
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """Throughput, failures by type, run and wait time percentiles over the last `window`
    (one of WINDOWS), with per-step series for charts."""
    length, step = WINDOWS[window]
    now = now or utcnow()
    end = _floor(now, step) + dt.timedelta(seconds=step)
    start = end - dt.timedelta(seconds=length)
    with reading(db) as conn:
        slots, settled = _span(conn, step, start, end, now)
    closed = _remember(f"window-{window}", (start, settled), lambda: _merged(slots[:settled]))
    whole = _merged([closed, *slots[settled:]])
    counts: dict[str, dict[str, int]] = {}
    for (task_type, status), n in sorted(whole.counts.items()):
        counts.setdefault(task_type, {})[status] = n
    finished = sum(whole.counts.values())
    failed = {t: c[FAILURE] for t, c in counts.items() if c.get(FAILURE)}
    summaries = [slot.summary() for slot in slots]
    return {
        "window": window,
        "start": iso(start), "end": iso(end), "step_seconds": step,
        "throughput": {"finished": finished,
                       "succeeded": sum(c.get(SUCCESS, 0) for c in counts.values()),
                       "failed": sum(failed.values()),
                       "per_minute": round(finished / (length / MINUTE), 3)},
        "counts": counts,
        "failures_by_type": failed,
        "run_time": {t: percentiles(h) for t, h in sorted(whole.run.items())},
        "wait_time": {t: percentiles(h) for t, h in sorted(whole.wait.items())},
        "series": {
            "times": [int((start + dt.timedelta(seconds=step * i)).timestamp()) for i in range(len(slots))],
            "completed": [summary["completed"] for summary in summaries],
            "failed": [summary["failed"] for summary in summaries],
            # p50 and p95 run time per step (None where nothing of the type ran)
            "run_time": {t: {q: [summary["run"].get(t, {}).get(q) for summary in summaries]
                             for q in ("p50", "p95")} for t in sorted(whole.run)},
        },
    }
