"""Times as the person looking at them reads them.

Times are stored in UTC. Pages show them in the browser's time zone: app.js keeps a `tz`
cookie with the browser's zone (Intl) and formats every `<time data-local>` with one
Intl formatter. The server renders the same text in the cookie's zone (UTC until the
browser has told it), so a page reads right even before its script runs; the calendar
uses that zone to decide which day a post falls on.
"""
from __future__ import annotations

import datetime as dt
import re
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


# A moment written the ISO-8601 way (`iso`, `str(datetime)`): date, time, maybe a zone.
ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")


def as_datetime(value: str | dt.datetime | None) -> dt.datetime | None:
    """The moment `value` names; one without a zone is UTC, as every stored time is."""
    if value is not None and not isinstance(value, dt.datetime):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


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


def with_local_times(text: object) -> Markup:
    """Text that may quote moments (a task's parameters and result, an audit entry's
    details, an error message): escaped, each ISO-8601 moment in it shown as `local_time`."""
    text = str(text if text is not None else "")
    out, at = [], 0
    for match in ISO_MOMENT.finditer(text):
        when = as_datetime(match.group())
        if when is None:
            continue
        out += [escape(text[at:match.start()]), local_time(when)]
        at = match.end()
    out.append(escape(text[at:]))
    return Markup("").join(out)


def local_date(value: str | dt.date | None) -> str:
    """A calendar day (a launch date) as people write it; a day has no time zone."""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime("%a %-d %b %Y") if value else ""


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
    app.jinja_env.filters.update(local=local_time, input_time=input_value,
                                 local_times=with_local_times, day=local_date,
                                 local_text=local_text)
