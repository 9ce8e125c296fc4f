"""The periodic jobs: one list that the scheduler registers and the Schedules page shows.

Each scheduled run is queued under an id derived from its date, so several schedulers (one
per worker machine) still queue it once. "Run now" queues the same work under a fresh id.
Another module adds its periodic job by appending a Schedule to SCHEDULES before the
runtime is built.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from huey import crontab
from sqlalchemy import Engine, select

from jobs import autonomous, queries
from jobs.db import reading
from jobs.models import iso, posts, utcnow
from jobs.settings import load_settings

HORIZON = dt.timedelta(days=32)  # how far ahead a next run is looked for


@dataclass(frozen=True)
class Schedule:
    name: str
    task_type: str
    description: str
    when: str                                # the crontab in words
    cron: dict                               # huey.crontab keyword arguments (UTC)
    dated: Callable[[dt.datetime], tuple[str, dict]]  # a run's (task id, params) at a time
    # None when it runs; otherwise why a due run is skipped.
    skipped_because: Callable[[Engine], str | None] = field(default=lambda _db: None)

    def matches(self) -> Callable[[dt.datetime], bool]:
        return crontab(**self.cron)

    def next_run(self, after: dt.datetime) -> dt.datetime | None:
        """The first minute after `after` (aware UTC) that the crontab matches."""
        test = self.matches()
        minute = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        end = after + HORIZON
        while minute <= end:
            if test(minute.replace(tzinfo=None)):
                return minute
            minute += dt.timedelta(minutes=1)
        return None


def _daily(at: dt.datetime) -> tuple[str, dict]:
    day = at.date().isoformat()
    return f"daily_operations-{day}", {"scheduled": day}


def _weekly(at: dt.datetime) -> tuple[str, dict]:
    year, week, _ = at.date().isocalendar()
    return f"weekly_report-{year}-W{week:02d}", {"week": f"{year}-W{week:02d}"}


def _retention(at: dt.datetime) -> tuple[str, dict]:
    day = at.date().isoformat()
    return f"retention-{day}", {"scheduled": day}


def _retention_off(_db: Engine) -> str | None:
    return None if load_settings().task_retention_days > 0 else "TASK_RETENTION_DAYS is 0"


def _autonomous_off(db: Engine) -> str | None:
    return None if autonomous.status(db)["enabled"] else "autonomous operations are off"


SCHEDULES: list[Schedule] = [
    Schedule("daily_operations", "daily_operations",
             "Drafts today's posts for every author active in the last 30 days",
             "every day at 08:00 UTC", {"minute": "0", "hour": "8"}, _daily, _autonomous_off),
    Schedule("weekly_report", "weekly_report", "The week's report on tasks and posts",
             "Mondays at 07:00 UTC", {"minute": "0", "hour": "7", "day_of_week": "1"}, _weekly),
    Schedule("retention", "retention",
             "Prunes finished tasks older than TASK_RETENTION_DAYS, in batches (stats and posts stay)",
             "every day at 03:30 UTC", {"minute": "30", "hour": "3"}, _retention, _retention_off),
]


def find(name: str) -> Schedule | None:
    return next((s for s in SCHEDULES if s.name == name), None)


def register(huey, submit: Callable[..., object], db: Engine) -> None:
    """Register every schedule as a Huey periodic task that queues its dated run."""
    for schedule in SCHEDULES:
        def due(schedule: Schedule = schedule) -> None:
            if schedule.skipped_because(db) is None:
                task_id, params = schedule.dated(utcnow())
                submit(schedule.task_type, "system", params, task_id=task_id)
        due.__name__ = due.__qualname__ = f"schedule_{schedule.name}"
        huey.periodic_task(schedule.matches(), name=f"schedule_{schedule.name}")(due)


def list_schedules(db: Engine) -> list[dict]:
    now = utcnow()
    result = []
    with reading(db) as conn:
        for s in SCHEDULES:
            last = queries.latest_of_type(conn, s.task_type)
            skipped = s.skipped_because(db)
            next_run = s.next_run(now)
            result.append({
                "name": s.name, "task_type": s.task_type, "description": s.description,
                "when": s.when, "enabled": skipped is None, "disabled_reason": skipped,
                "next_run": iso(next_run),
                "last_run": None if last is None else {
                    "task_id": last.id, "status": last.status,
                    "enqueued_at": iso(last.enqueued_at),
                    "finished_at": iso(last.finished_at),
                },
            })
    return result


def dated_work(db: Engine, owner: str | None = None, limit: int = 50) -> list[dict]:
    """The next planned posts (campaigns' dated drafts and scheduled posts), soonest first."""
    query = (select(posts.c.id, posts.c.owner, posts.c.platform, posts.c.status, posts.c.label,
                    posts.c.scheduled_at, posts.c.batch_id)
             .where(posts.c.scheduled_at >= utcnow(), posts.c.published_at.is_(None))
             .order_by(posts.c.scheduled_at).limit(limit))
    if owner is not None:
        query = query.where(posts.c.owner == owner)
    with reading(db) as conn:
        rows = conn.execute(query).all()
    return [{"post_id": r.id, "owner": r.owner, "platform": r.platform, "status": r.status,
             "label": r.label, "task_id": r.batch_id,
             "scheduled_at": iso(r.scheduled_at)} for r in rows]
