"""The posts API: list and change posts, schedule them, the calendar, exports and the
secret iCalendar feed."""
from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from quart import Blueprint, Response, jsonify, url_for
from quart_schema import document_querystring, document_request, document_response

from jobs import books, calendar_feed, exports
from jobs.campaign import plan
from jobs.models import now_iso
from jobs.posts import (MAX_ID, PostError, PostFilters, approve_plan, change_post, get_post,
                        list_posts)
from jobs.task_types import POSTED_TYPES
from jobs.scheduling import schedule_posts
from webapp import runtime
from webapp.actions import audit_action, get_task, submit
from webapp.auth import (acting_owner, any_signed_in_user, current, owner_filter, owner_scope,
                         public)
from webapp.errors import ApiError, load_body, parse_query
from webapp.post_schemas import (CalendarAnswer, CalendarQuery, Campaign, Error, ExportQuery,
                                 Post, PostChange, PostList, PostQuery, Queued, Schedule,
                                 ScheduleAnswer)

bp = Blueprint("posts", __name__)

CONFLICTS = frozenset({"invalid_transition", "already_published", "conflict"})
CALENDAR_MAX_DAYS = 100
EXPORT_LIMIT = 10_000


def post_error(exc: PostError) -> ApiError:
    return ApiError(409 if exc.code in CONFLICTS else 400, exc.code, exc.message, **exc.extra)


def _not_found(post_id: int) -> ApiError:
    return ApiError(404, "post_not_found", f"no post has id {post_id}")


@bp.get("/api/posts")
@document_querystring(PostQuery)
@document_response(PostList)
@document_response(Error, 400)
async def posts_list():
    query = parse_query(PostQuery)
    filters = PostFilters(owner=owner_filter(query.owner, "posts"), status=query.status,
                          platform=query.platform, book_id=query.book_id)
    rows, total = await asyncio.to_thread(list_posts, runtime().db, filters,
                                          offset=(query.page - 1) * query.per_page,
                                          limit=query.per_page)
    return jsonify({"posts": rows, "total": total, "page": query.page, "per_page": query.per_page})


@bp.get("/api/posts/<int:post_id>")
@document_response(Post)
@document_response(Error, 404)
async def post_get(post_id: int):
    post = await asyncio.to_thread(get_post, runtime().db, post_id, owner_scope())
    if post is None:
        raise _not_found(post_id)
    return jsonify(post)


async def update_post(post_id: int, changes: dict) -> dict:
    """Change a post (shared by the API and the pages); a manager's change of someone
    else's post is audited."""
    rt = runtime()
    try:
        before, after = await asyncio.to_thread(change_post, rt.db, post_id, owner_scope(), changes,
                                                mastodon_limit=rt.settings.mastodon_limit)
    except LookupError:
        raise _not_found(post_id) from None
    except PostError as exc:
        raise post_error(exc) from None
    if before["owner"] != current().email and after is not before:
        await audit_action("post.edit", f"post:{post_id}", {
            "owner": before["owner"],
            "changes": {k: [before[k], after[k]] for k in ("text", "status", "scheduled_at")
                        if before[k] != after[k]}})
    return after


@bp.patch("/api/posts/<int:post_id>")
@document_request(PostChange)
@document_response(Post)
@document_response(Error, 400)
@document_response(Error, 409)
async def post_patch(post_id: int):
    body = await load_body(PostChange)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name in ("text", "status"):
        if name in changes and changes[name] is None:
            raise ApiError(400, "invalid_request", f"{name} cannot be null",
                           fields={name: "cannot be null"})
    if not changes:
        raise ApiError(400, "invalid_request", "send any of text, status, scheduled_at")
    return jsonify(await update_post(post_id, changes))


async def schedule(post_ids: list[int], start: dt.datetime, every_hours: float) -> tuple[list, list]:
    try:
        done, skipped = await asyncio.to_thread(schedule_posts, runtime().db, owner_scope(),
                                                post_ids, start, dt.timedelta(hours=every_hours))
    except PostError as exc:
        raise post_error(exc) from None
    others = sorted({p["owner"] for p in done} - {current().email})
    if others:
        await audit_action("post.schedule", ",".join(others),
                           {"post_ids": [p["id"] for p in done]})
    return done, skipped


@bp.post("/api/posts/schedule")
@document_request(Schedule)
@document_response(ScheduleAnswer)
@document_response(Error, 400)
async def posts_schedule():
    body = await load_body(Schedule)
    done, skipped = await schedule(body.post_ids, body.start, body.every_hours)
    return jsonify({"scheduled": done, "not_scheduled": skipped})


async def calendar_posts(start: dt.datetime, end: dt.datetime, owner: str | None) -> list[dict]:
    """Posts with a place on the calendar between `start` and `end` (rejected ones have none)."""
    if end <= start or end - start > dt.timedelta(days=CALENDAR_MAX_DAYS):
        raise ApiError(400, "invalid_range",
                       f"`to` must come after `from`, at most {CALENDAR_MAX_DAYS} days later")
    filters = PostFilters(owner=owner, scheduled_from=start, scheduled_to=end)
    rows, _ = await asyncio.to_thread(list_posts, runtime().db, filters, limit=EXPORT_LIMIT)
    return rows


@bp.get("/api/calendar")
@document_querystring(CalendarQuery)
@document_response(CalendarAnswer)
@document_response(Error, 400)
async def calendar():
    query = parse_query(CalendarQuery)
    rows = await calendar_posts(query.from_, query.to, owner_filter(query.owner, "posts"))
    return jsonify({"posts": rows, "count": len(rows)})


@bp.get("/api/posts/export")
@document_querystring(ExportQuery)
@document_response(Error, 400)
async def posts_export():
    query = parse_query(ExportQuery)
    try:
        tz = ZoneInfo(query.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(400, "invalid_query", f"unknown time zone {query.tz!r}: use a name such "
                       "as Europe/London") from None
    if query.format == "hootsuite" and query.platform is None:
        raise ApiError(400, "platform_required",
                       "Hootsuite imports one platform per file: add platform=twitter (or another)")
    filters = PostFilters(owner=owner_filter(query.owner, "posts"), status=query.status,
                          platform=query.platform, scheduled_from=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    rows, _ = await asyncio.to_thread(list_posts, runtime().db, filters, limit=EXPORT_LIMIT)
    if query.format == "hootsuite":
        body, name = exports.to_hootsuite(rows, tz), f"hootsuite-{query.platform}.csv"
    else:
        body, name = exports.to_csv(rows), f"posts-{query.platform or 'all'}.csv"
    return Response(body, content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- approving a plan in one go --

async def plan_owner(task_id: str, user_id: str | None = None) -> str:
    """Whose drafts a task wrote, checked for this user: 404 unless they may see the task,
    400 when it writes no posts or `user_id` names someone else."""
    record = await get_task(task_id[:64])
    if record["type"] not in POSTED_TYPES:
        raise ApiError(400, "not_a_plan", f"task {task_id} writes no posts: send the id of a "
                       "launch campaign (or another task that wrote drafts)")
    if user_id is not None and acting_owner(user_id) != record["owner"]:
        raise ApiError(400, "invalid_request", f"task {task_id}'s drafts are "
                       f"{record['owner']}'s: leave user_id out", fields={"user_id": "not the owner"})
    if record["owner"] != current().email:
        await audit_action("post.approve_plan", record["owner"], {"task_id": record["task_id"]})
    return record["owner"]


async def approval_of_plan(task_id: str, user_id: str | None) -> tuple[str, dict]:
    """The post-approval task's owner and parameters for every draft of a plan."""
    return await plan_owner(task_id, user_id), {"plan": task_id[:64]}


async def approve_plan_now(task_id: str) -> list[int]:
    """For the pages: approve a plan's drafts at once (the API queues the approval task)."""
    owner = await plan_owner(task_id)
    return await asyncio.to_thread(approve_plan, runtime().db, owner, task_id[:64])


# -- launch campaigns --

async def queue_campaign(book_id: int, body: Campaign) -> dict:
    """Queue the planning of a book's launch campaign; the task record."""
    book = (await asyncio.to_thread(books.get_book, runtime().db, book_id, owner_scope())
            if book_id <= MAX_ID else None)
    if book is None:
        raise ApiError(404, "book_not_found", f"no book has id {book_id}")
    launch = body.launch_date or (book["launch_date"] and dt.date.fromisoformat(book["launch_date"]))
    if not launch:
        raise ApiError(400, "no_launch_date", "the book has no launch date: set one on the book "
                       "or send launch_date", fields={"launch_date": "required"})
    if abs(launch.year - dt.date.today().year) > 10:
        raise ApiError(400, "invalid_request", "pick a launch date within ten years of today",
                       fields={"launch_date": "too far"})
    try:
        ZoneInfo(body.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(400, "invalid_request", f"unknown time zone {body.tz!r}",
                       fields={"tz": "unknown time zone"}) from None
    now = dt.datetime.now(ZoneInfo(body.tz))
    if not plan(launch, ZoneInfo(body.tz), now):
        raise ApiError(400, "launch_passed", f"every moment of a campaign for {launch} has passed: "
                       "pick a later launch date", fields={"launch_date": "too early"})
    params = {"book_id": book_id, "book": {f: book[f] for f in books.FIELDS},
              "launch_date": launch.isoformat(), "platforms": body.platforms, "tz": body.tz}
    return await submit("launch_campaign", book["owner"], params)


@bp.post("/api/books/<int:book_id>/campaign")
@document_request(Campaign)
@document_response(Queued, 202)
@document_response(Error, 400)
@document_response(Error, 404)
async def campaign(book_id: int):
    record = await queue_campaign(book_id, await load_body(Campaign))
    return jsonify({"status": "launch_campaign_queued", "task_id": record["task_id"],
                    "timestamp": now_iso()}), 202


# -- the secret iCalendar feed --

async def calendar_url(rotate: bool = False) -> str:
    """The signed-in user's feed address; `rotate`: a new one (audited), the old one retired."""
    db, user = runtime().db, current()
    make = calendar_feed.rotate_token if rotate else calendar_feed.feed_token
    token = await asyncio.to_thread(make, db, user.id)
    if rotate:
        await audit_action("calendar.rotate", user.email)
    return url_for("posts.calendar_ics", token=token, _external=True)


@bp.post("/api/me/calendar-url")
@any_signed_in_user
async def rotate_calendar_url():
    """A new secret address for the calendar feed; the old one stops working."""
    return jsonify({"calendar_url": await calendar_url(rotate=True)})


@bp.get("/calendar/<token>.ics")
@public
async def calendar_ics(token: str):
    db = runtime().db
    found = await asyncio.to_thread(calendar_feed.owner_for_token, db, token[:64])
    if found is None:
        return Response("no calendar at this address\n", status=404, content_type="text/plain")
    email, role = found
    owner = None if role in ("manager", "viewer") else email
    body = await asyncio.to_thread(calendar_feed.feed, db, owner, name=f"Posts · {email}")
    return Response(body, content_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=300"})
