"""What an author's home shows: their books, each with its latest post per platform, the
drafts waiting for approval and what goes out next."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select

from jobs.books import list_books
from jobs.db import reading
from jobs.models import posts, utcnow
from jobs.posts import DRAFT, SCHEDULED, PostFilters, list_posts

RECENT_POSTS = 300  # enough to find each book's latest post per platform
NEXT_SCHEDULED = 5


def author_overview(db: Engine, owner: str, now: dt.datetime | None = None) -> dict:
    now = now or utcnow()
    books = list_books(db, owner, limit=100)
    recent, _ = list_posts(db, PostFilters(owner=owner), limit=RECENT_POSTS)
    latest: dict[int, dict[str, dict]] = {}
    for post in recent:  # newest first: the first seen per (book, platform) is the latest
        if post["book_id"] is not None:
            latest.setdefault(post["book_id"], {}).setdefault(post["platform"], post)
    with reading(db) as conn:
        drafts = dict(conn.execute(
            select(posts.c.book_id, func.count()).where(posts.c.owner == owner, posts.c.status == DRAFT)
            .group_by(posts.c.book_id)).all())
    upcoming, _ = list_posts(db, PostFilters(owner=owner, status=SCHEDULED, scheduled_from=now),
                             limit=50)
    for book in books:
        book["latest_posts"] = list(latest.get(book["id"], {}).values())
        book["drafts_waiting"] = drafts.get(book["id"], 0)
        book["next_post"] = next((p for p in upcoming if p["book_id"] == book["id"]), None)
    return {"books": books, "drafts_waiting": sum(drafts.values()),
            "next_scheduled": upcoming[:NEXT_SCHEDULED]}
