"""A book launch campaign: dated draft posts for the weeks around the launch date.

The plan is a list of moments — cover reveal, pre-order, countdown, launch day, first
reviews, follow-ups — each written per chosen platform as a draft carrying its planned
time (a proposal on the calendar, waiting for approval). Each moment is written as of
its own day, so the writer's sense of the launch (weeks away, tomorrow, out now, out last
week) fits when the post goes out.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from jobs.generation import batch_seed, generate
from jobs.platforms import get_platform
from jobs.posts import store_post
from jobs.settings import Settings
from jobs.writers import Book, make_writer


@dataclass(frozen=True)
class Moment:
    label: str
    days: int        # from the launch date
    lead: str = ""   # opening words for what the writer's angles do not say by themselves


MOMENTS = (
    Moment("Cover reveal", -42, "Cover reveal! "),
    Moment("Pre-order", -28, "Pre-orders are open. "),
    Moment("Countdown: two weeks", -14),
    Moment("Countdown: one week", -7),
    Moment("Countdown: tomorrow", -1),
    Moment("Launch day", 0),
    Moment("First reviews", 7),
    Moment("Follow-up", 14),
    Moment("Follow-up", 30),
)
POST_HOUR = 10  # local time of day each post is planned for


def plan(launch: dt.date, tz: ZoneInfo, now: dt.datetime) -> list[tuple[Moment, dt.datetime]]:
    """The moments still ahead, each with its planned time."""
    timed = [(m, dt.datetime.combine(launch + dt.timedelta(days=m.days), dt.time(POST_HOUR), tz))
             for m in MOMENTS]
    return [(m, at) for m, at in timed if at > now]


def write_campaign(settings: Settings, db: Engine, *, batch_id: str, owner: str, params: dict,
                   now: dt.datetime, on_post: Callable[[int, int], None]) -> dict:
    book = Book.from_dict(params["book"])
    launch = dt.date.fromisoformat(params["launch_date"])
    moments = plan(launch, ZoneInfo(params.get("tz") or "UTC"), now)
    platforms = params["platforms"]
    total = len(moments) * len(platforms)
    on_post(0, total)
    writer = make_writer(**settings.writer_options())
    seq = 0
    for moment, at in moments:
        made = generate(writer, book, platforms, 1, seed=batch_seed(f"{batch_id}:{moment.days}"),
                        today=at.date(), mastodon_limit=settings.mastodon_limit)
        for post in made:
            post = _with_lead(post, moment.lead, settings.mastodon_limit)
            store_post(db, batch_id=batch_id, seq=seq, owner=owner, book_id=params.get("book_id"),
                       post={**post, "scheduled_at": at, "label": moment.label})
            seq += 1
            on_post(seq, total)
    return {"posts": seq, "moments": [{"label": m.label, "at": at.isoformat()} for m, at in moments],
            "launch_date": launch.isoformat(), "book_id": params.get("book_id")}


def _with_lead(post: dict, lead: str, mastodon_limit: int) -> dict:
    """The post opened by the moment's words, when it still fits the platform."""
    if not lead:
        return post
    platform = get_platform(post["platform"], mastodon_limit=mastodon_limit)
    text = lead + post["text"]
    if not platform.fits(text):
        return post
    return {**post, "text": text, "length": platform.count(text)}
