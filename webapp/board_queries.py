"""Read-only questions the dashboard pages ask of the task records (blocking: call them
through `asyncio.to_thread`).

The board splits tasks into what is current (waiting or running) and what is history
(finished): two pages of `jobs.queries.list_tasks`, in the API's newest-first order.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from dataclasses import dataclass, field

from sqlalchemy import Engine, desc, func, select

from jobs.models import FAILURE, FINAL_STATUSES, STATUSES, SUCCESS, tasks, utcnow
from jobs import queries
from jobs.queries import ACTIVE_STATUSES
from jobs.settings import TASK_TYPES

ACTIVE_LIMIT = 200  # current tasks shown at once; the rest are counted


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows, as it appears in the URL."""
    status: str = ""
    type: str = ""
    owner: str = ""
    q: str = ""
    page: int = 1
    per_page: int = 25

    @classmethod
    def from_args(cls, args) -> "BoardFilters":
        status = (args.get("status") or "").strip().upper()
        task_type = (args.get("type") or "").strip()
        return cls(
            status=status if status in STATUSES else "",
            type=task_type if task_type in TASK_TYPES else "",
            owner=(args.get("owner") or "").strip()[:200],
            q=(args.get("q") or "").strip()[:64],
            page=_bounded_int(args.get("page"), 1, 1, 100_000),
            per_page=_bounded_int(args.get("per_page"), 25, 5, 200),
        )

    def query_string(self, **changes) -> str:
        """The URL query for these filters (empty values left out), with `changes` applied."""
        from urllib.parse import urlencode
        values = {"status": self.status, "type": self.type, "owner": self.owner, "q": self.q,
                  "page": self.page if self.page != 1 else "",
                  "per_page": self.per_page if self.per_page != 25 else ""}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    @property
    def active(self) -> bool:
        return bool(self.status or self.type or self.owner or self.q)

    def within(self, scope: str | None) -> "BoardFilters":
        """These filters limited to what one owner may see (None: everything)."""
        return self if scope is None else dataclasses.replace(self, owner=scope)


@dataclass
class Board:
    active: list[dict] = field(default_factory=list)
    active_total: int = 0
    history: list[dict] = field(default_factory=list)
    history_total: int = 0
    filters: BoardFilters = field(default_factory=BoardFilters)

    @property
    def pages(self) -> int:
        return max(1, -(-self.history_total // self.filters.per_page))


def _bounded_int(raw, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(raw), low), high)
    except (TypeError, ValueError):
        return default


def _section(db: Engine, f: BoardFilters, statuses: tuple[str, ...], page: int,
             per_page: int) -> tuple[list[dict], int]:
    wanted = tuple(s for s in statuses if not f.status or s == f.status)
    if not wanted:
        return [], 0
    return queries.list_tasks(db, statuses=wanted, task_type=f.type or None,
                              owner=f.owner or None, id_prefix=f.q or None,
                              page=page, per_page=per_page)


def board(db: Engine, f: BoardFilters) -> Board:
    result = Board(filters=f)
    result.active, result.active_total = _section(db, f, ACTIVE_STATUSES, 1, ACTIVE_LIMIT)
    result.history, result.history_total = _section(db, f, tuple(FINAL_STATUSES), f.page,
                                                    f.per_page)
    return result


# -- stats --

def _minute_bucket(db: Engine, column):
    if db.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("minute", column), "YYYY-MM-DD HH24:MI")
    return func.strftime("%Y-%m-%d %H:%M", column)  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff"


def finished_per_minute(db: Engine, *, minutes: int = 60) -> dict:
    """Tasks that ended as SUCCESS or FAILURE in each of the last `minutes` minutes."""
    now = utcnow().replace(second=0, microsecond=0)
    start = now - dt.timedelta(minutes=minutes - 1)
    bucket = _minute_bucket(db, tasks.c.finished_at)
    with db.connect() as conn:
        rows = conn.execute(
            select(bucket, tasks.c.status, func.count())
            .where(tasks.c.finished_at >= start, tasks.c.status.in_((SUCCESS, FAILURE)))
            .group_by(bucket, tasks.c.status)).all()
    counts = {(minute, status): n for minute, status, n in rows}
    times, completed, failed = [], [], []
    for i in range(minutes):
        minute = start + dt.timedelta(minutes=i)
        key = minute.strftime("%Y-%m-%d %H:%M")
        times.append(int(minute.timestamp()))
        completed.append(counts.get((key, SUCCESS), 0))
        failed.append(counts.get((key, FAILURE), 0))
    return {"times": times, "completed": completed, "failed": failed}


def run_times_per_minute(db: Engine, *, minutes: int = 60, limit: int = 20_000) -> dict:
    """Per task type and minute of finishing: p50 and p95 run time in seconds (None: no run)."""
    now = utcnow().replace(second=0, microsecond=0)
    start = now - dt.timedelta(minutes=minutes - 1)
    with db.connect() as conn:
        rows = conn.execute(
            select(tasks.c.type, tasks.c.started_at, tasks.c.finished_at)
            .where(tasks.c.finished_at >= start, tasks.c.started_at.is_not(None))
            .order_by(desc(tasks.c.finished_at)).limit(limit)).all()
    samples: dict[str, dict[int, list[float]]] = {}
    for task_type, started, finished in rows:
        index = int((finished.replace(second=0, microsecond=0) - start).total_seconds() // 60)
        if 0 <= index < minutes:
            samples.setdefault(task_type, {}).setdefault(index, []).append(
                max((finished - started).total_seconds(), 0.0))
    times = [int((start + dt.timedelta(minutes=i)).timestamp()) for i in range(minutes)]
    per_type = {}
    for task_type, by_minute in sorted(samples.items()):
        p50, p95 = [], []
        for i in range(minutes):
            values = by_minute.get(i)
            p50.append(_quantile(values, 0.50) if values else None)
            p95.append(_quantile(values, 0.95) if values else None)
        per_type[task_type] = {"p50": p50, "p95": p95}
    return {"times": times, "types": per_type}


def _quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return round(values[0], 3)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return round(cuts[int(q * 100) - 1], 3)


