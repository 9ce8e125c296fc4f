"""The author's pages: their home, the posts to review, and the publishing calendar.

Plain HTML forms answered with a redirect back (reloading never posts again); the
changes go through the same functions as the JSON API.
"""
from __future__ import annotations

import asyncio
import calendar as month_calendar
import datetime as dt
from urllib.parse import parse_qsl, urlencode

from pydantic import ValidationError
from quart import Blueprint, redirect, render_template, request

from jobs import books, queries
from jobs.overview import author_overview
from jobs.platforms import PLATFORMS
from jobs.posts import (MOVES, POST_STATES, PUBLISHED, PostFilters, draft_plans, list_posts,
                        post_owners)
from webapp import local_time, runtime
from webapp.auth import any_signed_in_user, current, local_path, owner_filter, owner_scope
from webapp.confirmation import confirmed
from webapp.errors import ApiError
from webapp.local_time import from_input, viewer_tz
from webapp.post_schemas import Campaign
from webapp.routes.pages import _back, _log_position
from webapp.routes.posts import (approve_plan_now, calendar_posts, calendar_url, queue_campaign,
                                 schedule, update_post)

bp = Blueprint("authoring", __name__)

REVIEW_PAGE = 100


@bp.record_once
def _install(state) -> None:
    local_time.register(state.app)
    state.app.jinja_env.globals.update(POST_STATES=POST_STATES, MOVES=MOVES)


async def _refused(exc: ApiError, back: str):
    return await render_template("error.html", message=exc.message, status=exc.status,
                                 back=back), exc.status


async def author_home():
    """An author's home (`/`): their books and what to do next."""
    rt, me = runtime(), current().email
    overview, running = await asyncio.gather(
        asyncio.to_thread(author_overview, rt.db, me),
        asyncio.to_thread(queries.active_tasks, rt.db, me))
    position = await _log_position() if running else ""
    return await render_template("home.html", running=running, position=position, **overview)


# -- reviewing posts --

# What the posts list says after a change made from it (`?done=`).
DONE_WORDS = {"approved": "Post approved: it is under Approved, ready to schedule.",
              "rejected": "Post rejected.", "draft": "Post moved back to draft.",
              "scheduled": "Post scheduled.", "published": "Post marked published.",
              "text": "Text saved.", "time": "Time saved."}


@bp.get("/posts")
async def review():
    args = request.args
    status = args.get("status", "draft")
    status = status if status in POST_STATES else ""
    book_id = args.get("book_id", "")
    platform = args.get("platform", "")
    filters = PostFilters(owner=owner_scope(), status=status or None,
                          platform=platform if platform in PLATFORMS else None,
                          book_id=int(book_id) if book_id.isdigit() and len(book_id) < 10 else None)
    db = runtime().db
    (rows, total), my_books = await asyncio.gather(
        asyncio.to_thread(list_posts, db, filters, limit=REVIEW_PAGE),
        asyncio.to_thread(books.list_books, db, owner_scope(), 200))
    start = (dt.datetime.now(viewer_tz()) + dt.timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0)
    return await render_template("posts.html", posts=rows, total=total, filters=filters,
                                 done=DONE_WORDS.get(args.get("done", "")), books=my_books,
                                 default_start=start.strftime("%Y-%m-%dT%H:%M"),
                                 tz=viewer_tz().key)


def _changes(form) -> dict:
    """Form fields as a post change: `status`, `text`, `scheduled_at` (local), `unschedule`."""
    changes: dict = {}
    if form.get("status") in POST_STATES:
        changes["status"] = form["status"]
    if "text" in form:
        text = form["text"].strip()
        if not text:
            raise ApiError(400, "invalid_request", "A post needs some text.")
        changes["text"] = text
    if form.get("unschedule"):
        changes["scheduled_at"] = None
    elif form.get("scheduled_at"):
        when = from_input(form["scheduled_at"])
        if when is None:
            raise ApiError(400, "invalid_request", "Pick a date and a time.")
        changes["scheduled_at"] = when
    return changes


@bp.post("/posts/<int:post_id>")
async def post_change(post_id: int):
    form = await request.form
    back = _back("/posts")
    if form.get("status") == PUBLISHED and not confirmed(form):
        return await render_template(
            "confirm.html", action=f"/posts/{post_id}", question="Mark this post as published?",
            detail="A published post can no longer be edited or moved.",
            button="Yes, it is published", fields={"status": PUBLISHED, "back": back}, cancel=back)
    try:
        changes = _changes(form)
        if changes:
            await update_post(post_id, changes)
    except ApiError as exc:
        return await _refused(exc, back)
    if form.get("back"):  # came through the confirmation page (its own address is the referrer)
        back = local_path(form["back"], back)
    if changes and back.partition("?")[0] == "/posts":  # the list says what became of it
        back = _with_query(back, done=changes.get("status") or ("text" if "text" in changes
                                                                 else "time"))
    return redirect(back, 303)


@bp.post("/posts/schedule")
async def post_schedule():
    form = await request.form
    back = _back("/posts?status=approved")
    ids = [int(i) for i in form.getlist("post_ids") if i.isdigit() and len(i) < 19]
    start = from_input(form.get("start", ""))
    try:
        every = float(form.get("every_hours", "24"))
    except ValueError:
        every = -1
    try:
        if not ids:
            raise ApiError(400, "invalid_request", "Tick the approved posts to schedule.")
        if start is None:
            raise ApiError(400, "invalid_request", "Pick the date and time of the first post.")
        if not 0 < every <= 24 * 31:
            raise ApiError(400, "invalid_request", "Hours between posts: a number from 1 to 744.")
        done, _ = await schedule(ids, start, every)
    except ApiError as exc:
        return await _refused(exc, back)
    first = start.astimezone(viewer_tz()).date().isoformat()
    return redirect(f"/calendar?{urlencode({'date': first, 'scheduled': len(done)})}", 303)


@bp.post("/posts/approve-plan")
async def plan_approve():
    """Every draft of a plan (a launch campaign's) approved in one go, back where it was asked."""
    form = await request.form
    back = _back("/calendar")
    try:
        approved = await approve_plan_now(form.get("task_id", ""))
    except ApiError as exc:
        return await _refused(exc, back)
    return redirect(_with_query(back, approved=len(approved)), 303)


def _with_query(path: str, **params) -> str:
    base, _, query = path.partition("?")
    kept = [(k, v) for k, v in parse_qsl(query) if k not in params]
    return f"{base}?{urlencode(kept + list(params.items()))}"


@bp.post("/books/<int:book_id>/campaign")
async def book_campaign(book_id: int):
    form = await request.form
    back = f"/books/{book_id}"
    try:
        body = Campaign.model_validate({"platforms": form.getlist("platforms"),
                                        "launch_date": form.get("launch_date") or None,
                                        "tz": viewer_tz().key})
    except ValidationError as exc:
        return await _refused(ApiError(400, "invalid_request", _campaign_problem(exc)), back)
    try:
        record = await queue_campaign(book_id, body)
    except ApiError as exc:
        return await _refused(exc, back)
    return redirect(f"/tasks/{record['task_id']}", 303)


def _campaign_problem(exc: ValidationError) -> str:
    fields = {str(e["loc"][0]) for e in exc.errors()}
    if "platforms" in fields:
        return "Choose at least one platform for the campaign."
    return "Enter the launch date as a date (year, month, day)."


@bp.post("/account/calendar-url")
@any_signed_in_user
async def rotate_feed():
    if not confirmed(await request.form):
        return await render_template(
            "confirm.html", action="/account/calendar-url", question="Make a new calendar address?",
            detail="Calendar apps subscribed to the old address stop receiving your posts; "
                   "subscribe them again with the new one.",
            button="Yes, make a new address", fields={}, cancel="/account")
    await calendar_url(rotate=True)
    return redirect("/account", 303)


# -- the calendar --

def _grid(view: str, anchor: dt.date) -> list[dt.date]:
    """The days shown: a week from Monday, or whole weeks covering the month."""
    if view == "week":
        monday = anchor - dt.timedelta(days=anchor.weekday())
        return [monday + dt.timedelta(days=i) for i in range(7)]
    weeks = month_calendar.Calendar(firstweekday=0).monthdatescalendar(anchor.year, anchor.month)
    return [day for week in weeks for day in week]


def _step(view: str, anchor: dt.date, direction: int) -> dt.date:
    if view == "week":
        return anchor + dt.timedelta(weeks=direction)
    month = anchor.month - 1 + direction
    return dt.date(anchor.year + month // 12, month % 12 + 1, 1)


@bp.get("/calendar")
async def calendar_page():
    tz = viewer_tz()
    view = "week" if request.args.get("view") == "week" else "month"
    today = dt.datetime.now(tz).date()
    try:
        anchor = dt.date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        anchor = today
    if abs(anchor.year - today.year) > 100:  # and far from the ends of the calendar
        anchor = today
    days = _grid(view, anchor)
    start = dt.datetime.combine(days[0], dt.time(), tz)
    end = dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(), tz)
    owner = owner_filter(request.args.get("owner", "")[:200] or None, "posts")
    db = runtime().db
    posts, plans, owners = await asyncio.gather(
        calendar_posts(start, end, owner),
        asyncio.to_thread(draft_plans, db, owner),
        asyncio.to_thread(post_owners, db) if owner_scope() is None else _nothing())
    by_day: dict[dt.date, list[dict]] = {day: [] for day in days}
    for post in posts:
        day = dt.datetime.fromisoformat(post["scheduled_at"]).astimezone(tz).date()
        by_day.setdefault(day, []).append(post)
    platforms = sorted({p["platform"] for p in posts})
    return await render_template(
        "calendar.html", view=view, anchor=anchor, days=days, by_day=by_day, tz=tz.key,
        today=dt.datetime.now(tz).date(), prev=_step(view, anchor, -1), next=_step(view, anchor, 1),
        platforms=platforms, count=len(posts), scheduled=request.args.get("scheduled"),
        approved=request.args.get("approved"), owner=owner if owner_scope() is None else None,
        owners=owners, plans=plans)


async def _nothing() -> list:
    return []
