"""Times as the person looking at them reads them.

Times are stored in UTC. Pages show them in the browser's time zone: app.js keeps a `tz`
cookie with the browser's zone (Intl) and formats every `<time data-local>` with one
Intl formatter. The server renders the same text in the cookie's zone (UTC until the
browser has told it), so a page reads right even before its script runs; the calendar
uses that zone to decide which day a post falls on.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup, escape
from quart import has_request_context, request

from jobs.models import iso

TZ_COOKIE = "tz"
FORMATS = {  # strftime twins of app.js's Intl options, by `data-local` style
    "datetime": "%a %-d %b %Y, %H:%M %Z",
    "date": "%a %-d %b",
    "time": "%H:%M",
}


def viewer_tz() -> ZoneInfo:
    # Shared renderings (rows sent to every board) have no viewer: UTC, re-formatted by app.js.
    name = request.cookies.get(TZ_COOKIE, "UTC")[:64] if has_request_context() else "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def as_datetime(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def local_text(value: str | dt.datetime | None, style: str = "datetime") -> str:
    when = as_datetime(value)
    return when.astimezone(viewer_tz()).strftime(FORMATS[style]) if when else ""


def local_time(value: str | dt.datetime | None, style: str = "datetime") -> Markup:
    """`<time>` in the viewer's zone; app.js re-formats it in the browser's."""
    when = as_datetime(value)
    if when is None:
        return Markup("—")
    return Markup(f'<time datetime="{escape(iso(when))}" data-local="{escape(style)}">'
                  f"{escape(local_text(when, style))}</time>")


def input_value(value: str | dt.datetime | None) -> str:
    """For `<input type="datetime-local">`: the time in the viewer's zone, to the minute."""
    when = as_datetime(value)
    return when.astimezone(viewer_tz()).strftime("%Y-%m-%dT%H:%M") if when else ""


def from_input(text: str) -> dt.datetime | None:
    """A `datetime-local` value, read in the viewer's zone; None when it is not one."""
    try:
        naive = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=viewer_tz())


def register(app) -> None:
    app.jinja_env.filters.update(local=local_time, input_time=input_value)
