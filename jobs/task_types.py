"""The task types: the one place that says what each kind of task is.

Everything that differs by type reads it: the settings (each type's timeout is a setting
named here, `TIMEOUT_<TYPE>`, with its default), the queue (priority), the worker (the
body, by its name in jobs/tasks.py, and its timeout), the board (label,
one-line summary, whether the task page lists posts) and the API's accepted types.

Retry policy is the same for every type, so it is no field here: a task whose worker is
lost runs again up to TASK_MAX_ATTEMPTS attempts; a task stopped by its timeout fails.

This module imports nothing of the engine, so settings can read it without importing the
task bodies (which import most of the engine).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

# When workers are busy, interactive work (what a person is waiting for) is taken before
# bulk work (daily operations, reports). Higher runs first.
INTERACTIVE, BULK = 10, 0


def _no_summary(_params: dict) -> str:
    return ""


@dataclass(frozen=True)
class TaskType:
    name: str
    label: str                   # what people read on the board
    body: str                    # the function in jobs/tasks.py that runs it
    default_timeout: float       # seconds; the setting `timeout_setting` overrides it
    priority: int = BULK
    writes_posts: bool = False   # its posts are listed on its task page
    summary: Callable[[dict], str] = _no_summary  # one line from its parameters

    @property
    def timeout_setting(self) -> str:
        """The Settings field (environment variable: the same in capitals)."""
        return f"timeout_{self.name}"

    def timeout(self, settings) -> float:
        return getattr(settings, self.timeout_setting)


def _generation_summary(params: dict) -> str:
    platforms = params.get("platforms") or []
    total = len(platforms) * int(params.get("count_per_platform") or 0)
    title = (params.get("book") or {}).get("title") or "sample book"
    posts = "post" if total == 1 else "posts"
    return f"{total} {posts} for “{title}” on {', '.join(platforms)}"


def _daily_summary(params: dict) -> str:
    return "scheduled run" if params.get("scheduled") else "run on request"


def _weekly_summary(params: dict) -> str:
    return f"week {params['week']}" if params.get("week") else "on request"


def _day(iso_date: str | None) -> str:
    """A calendar date as people write it (no time zone: a launch is a day, not a moment)."""
    try:
        return dt.date.fromisoformat(iso_date or "").strftime("%-d %b %Y")
    except ValueError:
        return str(iso_date)


def _campaign_summary(params: dict) -> str:
    title = (params.get("book") or {}).get("title") or "a book"
    return (f"“{title}” launching {_day(params.get('launch_date'))} on "
            f"{', '.join(params.get('platforms') or [])}")


def _approval_summary(params: dict) -> str:
    if params.get("plan"):
        return f"every draft of plan {params['plan'][:12]}"
    return f"{len(params.get('post_ids') or [])} post(s)"


_ALL = (
    TaskType("content_generation", "Post generation", "content_generation", 300,
             priority=INTERACTIVE, writes_posts=True, summary=_generation_summary),
    TaskType("weekly_report", "Weekly report", "weekly_report", 600, summary=_weekly_summary),
    TaskType("daily_operations", "Daily operations", "daily_operations", 300,
             writes_posts=True, summary=_daily_summary),
    TaskType("post_approval", "Post approval", "post_approval", 30,
             priority=INTERACTIVE, summary=_approval_summary),
    TaskType("status_check", "Status check", "status_check", 15, priority=INTERACTIVE),
    # Retention commits batch by batch, so a run cut by its timeout resumes where it stopped.
    TaskType("retention", "Retention", "retention_run", 3600),
    TaskType("launch_campaign", "Launch campaign", "launch_campaign", 300,
             writes_posts=True, summary=_campaign_summary),
)

TYPES: dict[str, TaskType] = {t.name: t for t in _ALL}
NAMES: tuple[str, ...] = tuple(TYPES)
POSTED_TYPES: frozenset[str] = frozenset(t.name for t in _ALL if t.writes_posts)


def priority_of(task_type: str) -> int:
    known = TYPES.get(task_type)
    return known.priority if known is not None else BULK


def label(task_type: str) -> str:
    known = TYPES.get(task_type)
    return known.label if known is not None else task_type


def summary(task: dict) -> str:
    """One line saying what the task is about, from its parameters."""
    known = TYPES.get(task.get("type"))
    return known.summary(task.get("params") or {}) if known is not None else ""
