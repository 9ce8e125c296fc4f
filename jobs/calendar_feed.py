"""Each user's publishing calendar as an iCalendar (RFC 5545) feed at a secret address.

The address carries a random token: calendar apps cannot sign in, so whoever holds it may
read the feed (and nothing else). Rotating it makes the old address stop working.
"""
from __future__ import annotations

import datetime as dt
import secrets

import icalendar
from sqlalchemy import Engine, delete, select

from jobs.db import insert_if_missing, reading
from jobs.models import calendar_feeds, users, utcnow
from jobs.platforms import PLATFORMS
from jobs.posts import PUBLISHED, SCHEDULED, PostFilters, list_posts

EVENT_MINUTES = 15  # a post is a moment; calendar apps show it as a short event
FEED_LIMIT = 5000


def feed_token(db: Engine, user_id: int) -> str:
    """The user's token, made on first use (by whichever of two requests at once comes first:
    both answer the same token)."""
    with reading(db) as conn:
        token = conn.execute(select(calendar_feeds.c.token)
                             .where(calendar_feeds.c.user_id == user_id)).scalar_one_or_none()
    if token is not None:
        return token
    with db.begin() as conn:
        insert_if_missing(conn, calendar_feeds, [calendar_feeds.c.user_id], user_id=user_id,
                          token=secrets.token_urlsafe(24), created_at=utcnow())
        return conn.execute(select(calendar_feeds.c.token)
                            .where(calendar_feeds.c.user_id == user_id)).scalar_one()


def rotate_token(db: Engine, user_id: int) -> str:
    with db.begin() as conn:
        conn.execute(delete(calendar_feeds).where(calendar_feeds.c.user_id == user_id))
    return feed_token(db, user_id)


def owner_for_token(db: Engine, token: str) -> tuple[str, str] | None:
    """(email, role) of the enabled user the token belongs to, or None."""
    with reading(db) as conn:
        row = conn.execute(
            select(users.c.email, users.c.role)
            .select_from(calendar_feeds.join(users, users.c.id == calendar_feeds.c.user_id))
            .where(calendar_feeds.c.token == token, users.c.disabled.is_(False))).first()
    return (row.email, row.role) if row else None


def feed(db: Engine, owner: str | None, *, name: str, now: dt.datetime | None = None) -> bytes:
    """Scheduled and published posts (`owner`'s, or everyone's for None) from 30 days back."""
    now = now or utcnow()
    filters = PostFilters(owner=owner, scheduled_from=now - dt.timedelta(days=30))
    rows, _ = list_posts(db, filters, limit=FEED_LIMIT)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Book Marketing Agent//Publishing calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    for post in rows:
        if post["status"] not in (SCHEDULED, PUBLISHED):
            continue  # proposals wait on the dashboard until they are scheduled
        at = dt.datetime.fromisoformat(post["scheduled_at"])
        label = PLATFORMS[post["platform"]].label if post["platform"] in PLATFORMS else post["platform"]
        event = icalendar.Event()
        event.add("uid", f"post-{post['id']}@book-marketing-agent")
        event.add("dtstamp", now)
        event.add("dtstart", at)
        event.add("dtend", at + dt.timedelta(minutes=EVENT_MINUTES))
        event.add("summary", f"{label}: {post['book_title'] or 'post'}"
                  + (" (published)" if post["status"] == PUBLISHED else ""))
        event.add("description", post["text"])
        event.add("categories", [label])
        if post["link"]:
            event.add("url", post["link"])
        if post["updated_at"]:
            event.add("last-modified", dt.datetime.fromisoformat(post["updated_at"]))
        cal.add_component(event)
    return cal.to_ical()
