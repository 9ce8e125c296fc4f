"""Jinja filters and globals the dashboard templates share (times, labels, task summaries).

Rows are rendered once per event and sent to every open board, so nothing here may depend
on who is looking; times are rendered as text for the moment of rendering and kept fresh
in the browser by app.js from their `datetime`/`data-since` attributes.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import get_args

from quart import Quart, current_app

from jobs import task_types
from jobs.models import FINAL_STATUSES, STATUSES, from_iso, iso, now_iso
from jobs.platforms import PLATFORMS
from jobs.queries import ACTIVE_STATUSES
from webapp.schemas import PlatformName

ASSET_VERSION = "3"  # bump when app.css or app.js change, so browsers fetch them again

STATUS_HELP = {
    "PENDING": "waiting for a worker",
    "STARTED": "running",
    "RETRY": "waiting for another attempt",
    "SUCCESS": "finished",
    "FAILURE": "failed",
    "REVOKED": "revoked",
}


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return from_iso(value)
    except ValueError:
        return None


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def ago(value: str | None) -> str:
    when = parse_time(value)
    if when is None:
        return "—"
    return seconds_text((dt.datetime.now(dt.UTC) - when).total_seconds()) + " ago"


def run_seconds(task: dict) -> float | None:
    started = parse_time(task.get("started_at"))
    if started is None:
        return None
    finished = parse_time(task.get("finished_at")) or dt.datetime.now(dt.UTC)
    return (finished - started).total_seconds()


def is_running(task: dict) -> bool:
    return task.get("status") == "STARTED" and bool(task.get("started_at"))


def section_of(task: dict) -> str:
    return "history" if task.get("status") in FINAL_STATUSES else "active"


def by_platform(posts: list[dict]) -> list[tuple[str, list[dict]]]:
    """Posts grouped by platform, platforms in the order their first post was written."""
    groups: dict[str, list[dict]] = {}
    for post in posts:
        groups.setdefault(post["platform"], []).append(post)
    return list(groups.items())


def epoch_iso(seconds: int) -> str:
    return iso(dt.datetime.fromtimestamp(seconds, dt.UTC))


def async_threshold() -> int:
    return current_app.extensions["runtime"].settings.async_threshold


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def action_text(code: str) -> str:
    """An audit entry's action as the page reads it: `queue.resume` -> "Queue: resume",
    `tasks.bulk_revoke` -> "Tasks: bulk revoke" (the API keeps the code)."""
    subject, _, verb = code.partition(".")
    return f"{subject.capitalize()}: {verb.replace('_', ' ')}" if verb else code


def register(app: Quart) -> None:
    app.jinja_env.filters.update(
        ago=ago, seconds=seconds_text, run_seconds=run_seconds, summary=task_types.summary,
        section=section_of, pretty_json=pretty_json, by_platform=by_platform, epoch_iso=epoch_iso,
        type_label=task_types.label, action_text=action_text,
    )
    app.jinja_env.tests.update(running=is_running)
    app.jinja_env.globals.update(
        STATUSES=STATUSES, ACTIVE_STATUSES=ACTIVE_STATUSES, FINAL_STATUSES=FINAL_STATUSES,
        STATUS_HELP=STATUS_HELP, TASK_TYPES=task_types.NAMES,
        PLATFORM_NAMES=get_args(PlatformName), PLATFORMS=PLATFORMS,
        server_now=now_iso, async_threshold=async_threshold, asset_version=ASSET_VERSION,
    )
