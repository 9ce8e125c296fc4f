"""Posts as files for other tools: a plain CSV, and Hootsuite's bulk-composer layout."""
from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

CSV_HEADER = ("platform", "scheduled_at", "text", "link", "book")


def to_csv(posts: list[dict]) -> str:
    """One row per post under a header; times ISO-8601 UTC."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for post in posts:
        writer.writerow((post["platform"], post["scheduled_at"] or "", post["text"],
                         post["link"], post["book_title"] or ""))
    return out.getvalue()


def to_hootsuite(posts: list[dict], tz: ZoneInfo) -> str:
    """Hootsuite's bulk composer: no header; date `MM/DD/YYYY HH:mm` in the time zone the
    Hootsuite account uses, message, link. The link column is left empty when the message
    already carries it, or Hootsuite would add it a second time."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for post in posts:
        when = dt.datetime.fromisoformat(post["scheduled_at"]).astimezone(tz)
        link = "" if not post["link"] or post["link"] in post["text"] else post["link"]
        writer.writerow((when.strftime("%m/%d/%Y %H:%M"), post["text"], link))
    return out.getvalue()
