"""Stored posts and their life: draft → approved | rejected; approved → scheduled → published.

`scheduled_at` is the post's place on the calendar. On a scheduled post it is when it goes
out; a draft or approved post may carry one as a proposal (a campaign's plan), which
scheduling confirms.

A task writes each post as it is made, keyed by (batch, seq), so a re-run of the same task
rewrites its posts instead of adding duplicates. Every other change goes through
`change_post`, which checks the move is allowed and re-counts edited text by the
platform's own rules.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, func, select, update

from jobs.db import reading
from jobs.models import MAX_ID, books, iso, posts, utcnow
from jobs.platforms import get_platform

DRAFT, APPROVED, REJECTED, SCHEDULED, PUBLISHED = (
    "draft", "approved", "rejected", "scheduled", "published")
POST_STATES = (DRAFT, APPROVED, REJECTED, SCHEDULED, PUBLISHED)
# Where each state may go. Besides the forward path, a person may change their mind:
# a rejected or approved post back to draft, a scheduled one back to approved (unscheduled).
MOVES = {
    DRAFT: {APPROVED, REJECTED},
    REJECTED: {DRAFT, APPROVED},
    APPROVED: {SCHEDULED, DRAFT, REJECTED, PUBLISHED},
    SCHEDULED: {APPROVED, PUBLISHED},
    PUBLISHED: set(),
}
PAST_GRACE = dt.timedelta(minutes=1)  # a time picked "now" in a form is not in the past
HORIZON = dt.timedelta(days=3660)  # how far ahead a post may be planned


class PostError(ValueError):
    """A change that cannot be made; `code` and `extra` go into the API's error answer."""

    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def store_post(db: Engine, *, batch_id: str, seq: int, owner: str, post: dict,
               book_id: int | None = None) -> None:
    store_posts(db, batch_id=batch_id, first_seq=seq, owner=owner, batch=[post], book_id=book_id)


# What a re-run of a task rewrites in the posts it stored before (keyed by batch and seq).
_REWRITTEN = ("platform", "text", "length", "limit", "writer", "scheduled_at", "label")
# The columns a post is stored with, and their PostgreSQL types (for its arrays).
_STORED = {"batch_id": "text", "seq": "int", "owner": "text", "book_id": "int", "platform": "text",
           "text": "text", "length": "int", "limit": "int", "writer": "text", "status": "text",
           "created_at": "timestamptz", "scheduled_at": "timestamptz", "label": "text"}


def store_posts(db: Engine, *, batch_id: str, first_seq: int, owner: str, batch: list[dict],
                book_id: int | None = None) -> None:
    """Store consecutive posts of a batch (seq `first_seq` on) in one statement.

    One fixed statement given to the driver: building a SQLAlchemy insert with its per-row
    type processing cost a queued task as much as a tenth of writing its posts. On SQLite
    the driver runs it once per post, in one transaction. On PostgreSQL the posts go as one
    array per column in a single statement, atomic without a transaction of its own: two
    round trips to the server (the pool's ping and the statement) instead of four (BEGIN
    and COMMIT), each of which waits for the server's turn on a busy machine, and about 40 %
    less of its CPU for a 200-post batch. Times are written as the UTCDateTime columns
    write them (SQLite: UTC text), so both read the same.
    """
    if not batch:
        return
    sqlite_ = db.dialect.name != "postgresql"
    now = _stored_time(utcnow(), sqlite_)
    rows = [(batch_id, first_seq + i, owner, book_id, post["platform"], post["text"], post["length"],
             post["limit"], post["writer"], DRAFT, now, _stored_time(post.get("scheduled_at"), sqlite_),
             post.get("label"))
            for i, post in enumerate(batch)]
    if sqlite_:
        with db.begin() as conn:
            conn.exec_driver_sql(_SQLITE_UPSERT, rows)
    else:
        with db.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")  # the statement is atomic
            conn.exec_driver_sql(_POSTGRES_UPSERT, tuple(list(column) for column in zip(*rows)))


def _stored_time(value: dt.datetime | None, sqlite_: bool) -> dt.datetime | str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite_ else value


def _upsert_sql(source: str) -> str:
    columns = ", ".join(f'"{c}"' for c in _STORED)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in _REWRITTEN)
    return f"INSERT INTO posts ({columns}) {source} ON CONFLICT (batch_id, seq) DO UPDATE SET {updates}"


_SQLITE_UPSERT = _upsert_sql(f"VALUES ({', '.join('?' * len(_STORED))})")
_POSTGRES_UPSERT = _upsert_sql(
    f"SELECT * FROM unnest({', '.join(f'%s::{kind}[]' for kind in _STORED.values())})")


def batch_posts(db: Engine, batch_id: str, owner: str | None = None) -> list[dict]:
    """A batch's posts in order; with `owner`, only if they are theirs."""
    query = _with_book().where(posts.c.batch_id == batch_id)
    if owner is not None:
        query = query.where(posts.c.owner == owner)
    with reading(db) as conn:
        rows = conn.execute(query.order_by(posts.c.seq)).mappings().all()
    return [post_view(r) for r in rows]


def approve_posts(db: Engine, owner: str, post_ids: list[int]) -> tuple[list[int], list[int]]:
    """Approve the owner's drafts (and rejected posts) among `post_ids`; an approved one
    stays as it is. Return (approved, the others: not found, not theirs, or past approval)."""
    now = utcnow()
    post_ids = [i for i in post_ids if 0 < i <= MAX_ID]
    with db.begin() as conn:
        changed = set(conn.execute(
            update(posts).where(posts.c.id.in_(post_ids), posts.c.owner == owner,
                                posts.c.status.in_((DRAFT, REJECTED)))
            .values(status=APPROVED, approved_at=now, updated_at=now).returning(posts.c.id)
        ).scalars())
        already = set(conn.execute(
            select(posts.c.id).where(posts.c.id.in_(post_ids), posts.c.owner == owner,
                                     posts.c.status == APPROVED)).scalars())
    found = changed | already
    return sorted(found), [i for i in post_ids if i not in found]


def approve_plan(db: Engine, owner: str, batch_id: str) -> list[int]:
    """Approve every draft of one plan (the posts one task wrote: a launch campaign's dated
    drafts) that is the owner's; return their ids. Rejected ones stay rejected: someone
    turned them down on purpose."""
    now = utcnow()
    with db.begin() as conn:
        return sorted(conn.execute(
            update(posts).where(posts.c.batch_id == batch_id, posts.c.owner == owner,
                                posts.c.status == DRAFT)
            .values(status=APPROVED, approved_at=now, updated_at=now).returning(posts.c.id)
        ).scalars())


def draft_plans(db: Engine, owner: str | None, *, book_id: int | None = None,
                limit: int = 20) -> list[dict]:
    """Plans waiting for approval, soonest first: per task that wrote dated drafts, whose
    they are, for which book, how many drafts and from when to when."""
    first, last = func.min(posts.c.scheduled_at), func.max(posts.c.scheduled_at)
    query = (select(posts.c.batch_id, posts.c.owner, posts.c.book_id, books.c.title,
                    func.count().label("drafts"), first.label("first"), last.label("last"))
             .select_from(posts.outerjoin(books, books.c.id == posts.c.book_id))
             .where(posts.c.status == DRAFT, posts.c.scheduled_at.is_not(None))
             .group_by(posts.c.batch_id, posts.c.owner, posts.c.book_id, books.c.title)
             .order_by(first, posts.c.batch_id).limit(limit))
    if owner is not None:
        query = query.where(posts.c.owner == owner)
    if book_id is not None:
        query = query.where(posts.c.book_id == book_id)
    with reading(db) as conn:
        rows = conn.execute(query).mappings().all()
    return [{"task_id": r["batch_id"], "owner": r["owner"], "book_id": r["book_id"],
             "book_title": r["title"], "drafts": r["drafts"], "first": iso(r["first"]),
             "last": iso(r["last"])} for r in rows]


def post_owners(db: Engine, limit: int = 500) -> list[str]:
    """Everyone who has posts, for a manager's owner filter."""
    with reading(db) as conn:
        return list(conn.execute(select(posts.c.owner).distinct().order_by(posts.c.owner)
                                 .limit(limit)).scalars())


@dataclass(frozen=True)
class PostFilters:
    owner: str | None = None
    status: str | None = None
    platform: str | None = None
    book_id: int | None = None
    scheduled_from: dt.datetime | None = None
    scheduled_to: dt.datetime | None = None


def list_posts(db: Engine, filters: PostFilters, *, offset: int = 0,
               limit: int = 100) -> tuple[list[dict], int]:
    """Posts matching `filters`, newest first (by their time on the calendar when a range
    of it is asked for), and how many match in all."""
    conditions = _conditions(filters)
    query = _with_book().where(*conditions)
    if filters.scheduled_from or filters.scheduled_to:
        query = query.order_by(posts.c.scheduled_at, posts.c.id)
    else:
        query = query.order_by(posts.c.created_at.desc(), posts.c.id.desc())
    with reading(db) as conn:
        total = conn.execute(select(func.count()).select_from(posts).where(*conditions)).scalar_one()
        rows = conn.execute(query.offset(offset).limit(limit)).mappings().all()
    return [post_view(r) for r in rows], total


def _conditions(f: PostFilters) -> list:
    conditions = []
    if f.owner is not None:
        conditions.append(posts.c.owner == f.owner)
    if f.status is not None:
        conditions.append(posts.c.status == f.status)
    if f.platform is not None:
        conditions.append(posts.c.platform == f.platform)
    if f.book_id is not None:
        conditions.append(posts.c.book_id == f.book_id)
    if f.scheduled_from is not None:
        conditions.append(posts.c.scheduled_at >= f.scheduled_from)
    if f.scheduled_to is not None:
        conditions.append(posts.c.scheduled_at < f.scheduled_to)
    return conditions


def get_post(db: Engine, post_id: int, owner: str | None = None) -> dict | None:
    if not 0 < post_id <= MAX_ID:
        return None
    query = _with_book().where(posts.c.id == post_id)
    if owner is not None:
        query = query.where(posts.c.owner == owner)
    with reading(db) as conn:
        row = conn.execute(query).mappings().first()
    return post_view(row) if row else None


def change_post(db: Engine, post_id: int, owner: str | None, changes: dict, *,
                mastodon_limit: int = 500, now: dt.datetime | None = None) -> tuple[dict, dict]:
    """Apply `changes` (any of text, status, scheduled_at) to a post; return (the post
    before, the post after). Raises PostError for a change that is not allowed, LookupError
    when the post does not exist or (with `owner`) is not theirs."""
    now = now or utcnow()
    before = get_post(db, post_id, owner)
    if before is None:
        raise LookupError(post_id)
    values = _planned(before, changes, mastodon_limit, now)
    if not values:
        return before, before
    values["updated_at"] = now
    with db.begin() as conn:
        # Only if nobody changed its state meanwhile: two people moving one post, one wins.
        done = conn.execute(update(posts).where(posts.c.id == post_id,
                                                posts.c.status == before["status"])
                            .values(**values)).rowcount
    if not done:
        raise PostError("conflict", f"post {post_id} was changed meanwhile; reload it and try again")
    return before, get_post(db, post_id)


def _planned(post: dict, changes: dict, mastodon_limit: int, now: dt.datetime) -> dict:
    """The column values a change sets, after checking it."""
    if post["status"] == PUBLISHED:
        raise PostError("already_published", f"post {post['id']} is published; it can no longer change")
    values: dict = {}
    if "text" in changes and changes["text"] != post["text"]:
        values.update(_checked_text(post["platform"], changes["text"], mastodon_limit))
    target = changes.get("status") or post["status"]
    if "scheduled_at" in changes:
        when = changes["scheduled_at"]
        check_time(when, now, "scheduled_at")
        if "status" not in changes and post["status"] in (APPROVED, SCHEDULED):
            target = SCHEDULED if when is not None else APPROVED  # moved, or taken off
        values["scheduled_at"] = when
    if target != post["status"]:
        if target not in MOVES[post["status"]]:
            raise PostError("invalid_transition", f"a {post['status']} post cannot become {target}"
                            + ("; approve it first" if target == SCHEDULED else ""),
                            **{"from": post["status"], "to": target})
        values["status"] = target
        if target == APPROVED and post["status"] != SCHEDULED:
            values["approved_at"] = now
        if target == PUBLISHED:
            values["published_at"] = now
        if target == REJECTED or (target == APPROVED and post["status"] == SCHEDULED):
            values["scheduled_at"] = None  # off the calendar
    if target == SCHEDULED:
        planned = "scheduled_at" not in values
        when = (post["scheduled_at"] and dt.datetime.fromisoformat(post["scheduled_at"])
                if planned else values["scheduled_at"])
        if not when:
            raise PostError("missing_time", "say when to publish it: scheduled_at is needed",
                            fields={"scheduled_at": "required to schedule"})
        if planned and post["status"] != SCHEDULED:
            check_time(when, now, "scheduled_at")  # a proposal's time may have passed
    return values


def check_time(when: dt.datetime | None, now: dt.datetime, field: str) -> None:
    if when is None:
        return
    if when < now - PAST_GRACE:
        raise PostError("in_the_past", "pick a time from now on", fields={field: "in the past"})
    if when > now + HORIZON:
        raise PostError("too_far_ahead", "pick a time within the next ten years",
                        fields={field: "too far ahead"})


def _checked_text(platform_name: str, text: str, mastodon_limit: int) -> dict:
    platform = get_platform(platform_name, mastodon_limit=mastodon_limit)
    length = platform.count(text)
    if length > platform.limit:
        raise PostError("too_long", f"{length} characters by {platform.label}'s counting; "
                        f"at most {platform.limit}: shorten it", length=length, limit=platform.limit)
    if not platform.fits(text):  # within the length, but too many bytes, hashtags or links
        rules = [f"at most {platform.max_hashtags} hashtag(s)"] if platform.max_hashtags else []
        rules += [f"at most {platform.max_links} link(s)"] if platform.max_links is not None else []
        raise PostError("breaks_platform_rules", f"{platform.label} refuses this text"
                        + (f" ({', '.join(rules)})" if rules else ""), length=length,
                        limit=platform.limit)
    return {"text": text, "length": length, "limit": platform.limit}


def _with_book():
    return (select(posts, books.c.title.label("book_title"), books.c.link.label("book_link"))
            .select_from(posts.outerjoin(books, books.c.id == posts.c.book_id)))


def post_view(row) -> dict:
    view = {"id": row["id"], "platform": row["platform"], "text": row["text"],
            "length": row["length"], "limit": row["limit"], "writer": row["writer"],
            "status": row["status"], "seq": row["seq"], "book_id": row["book_id"],
            "owner": row["owner"], "batch_id": row["batch_id"], "label": row["label"],
            "book_title": row.get("book_title"), "link": row.get("book_link") or "",
            "created_at": iso(row["created_at"]), "approved_at": iso(row["approved_at"]),
            "scheduled_at": iso(row["scheduled_at"]), "published_at": iso(row["published_at"]),
            "updated_at": iso(row["updated_at"])}
    return view
