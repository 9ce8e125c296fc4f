"""Server-rendered pages and their forms.

Every form works twice: with htmx (the answer is a fragment swapped into the page) and as
a plain HTML form post, answered with a redirect so that reloading never posts again.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from quart import Blueprint, redirect, render_template, request

from jobs import alerts, autonomous, books, queries, task_stats, webhooks
from jobs.db import reading
from jobs.posts import batch_posts
from webapp import board_queries, runtime, view_helpers
from webapp.actions import request_generation, retry, revoke, run_daily, set_autonomous
from webapp.auth import can_see, current, local_path, manager_only, owner_scope
from webapp.confirmation import ask_first, confirmed
from webapp.board_feed import task_detail
from webapp.board_queries import BoardFilters
from webapp.errors import ApiError
from webapp.forms import FORM_ERROR, GenerateForm, field_errors_from, parse_generate
from webapp.health import health_report, stats_window
from webapp.role_views import AuthorView, seen, webhook_seen

log = logging.getLogger("webapp.pages")

bp = Blueprint("pages", __name__)


@bp.record_once
def _install(state) -> None:
    view_helpers.register(state.app)


def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


async def _log_position() -> str:
    """Where the event log stands now; a page's stream resumes from here."""
    try:
        return await runtime().bus.head() or ""
    except Exception as exc:  # Redis down: the stream will resynchronise the page instead
        log.warning("could not read the event log position: %s", exc)
        return ""


def _back(default: str) -> str:
    """The page the form was posted from, when it is ours; `default` otherwise."""
    referrer = urlsplit(request.headers.get("Referer", ""))
    if referrer.netloc and referrer.netloc == request.host:
        return local_path(referrer.path + (f"?{referrer.query}" if referrer.query else ""), default)
    return default


async def _flash(message: str, *, kind: str = "info", link: str | None = None,
                 link_text: str | None = None, status: int = 200):
    html = await render_template("_flash.html", message=message, kind=kind, link=link,
                                 link_text=link_text)
    return html, status


async def _error_page(exc: ApiError):
    return await render_template("error.html", message=exc.message, status=exc.status), exc.status


# -- the board --

@bp.get("/")
async def home():
    """Authors start from their books; managers and viewers from the task board."""
    if current().role == "author":
        from webapp.routes.authoring import author_home
        return await author_home()
    return await board()


@bp.get("/tasks")
async def board():
    rt = runtime()
    scope = owner_scope()  # authors see their own tasks only
    filters = BoardFilters.from_args(request.args).within(scope)
    position = await _log_position()  # before reading, so the stream replays what follows
    data, health = await asyncio.gather(
        asyncio.to_thread(board_queries.board, rt.db, filters), _health())
    return await render_template("board.html", board=data, health=health, position=position,
                                 filters=filters, scoped=scope is not None)


# -- one task --

@bp.get("/tasks/<task_id>")
async def task_page(task_id: str):
    position = await _log_position()
    detail = await asyncio.to_thread(task_detail, runtime(), task_id)
    if detail is None or not can_see(detail["task"]["owner"]):
        return await render_template("error.html", status=404,
                                     message=f"No task has id {task_id}."), 404
    detail = seen(AuthorView.detail, detail)
    webhook = await asyncio.to_thread(webhooks.deliveries, runtime().db, task_id)
    return await render_template("task.html", position=position, webhook=webhook_seen(webhook),
                                 **detail)


async def _unconfirmed(form, task_id: str, action: str, question: str, detail: str,
                       button: str, fields: dict | None = None):
    """Without JavaScript nothing asked first: a plain form post gets a confirmation page."""
    if confirmed(form):
        return None
    # Remember where the person came from: after confirming, the referrer is this page.
    fields = {**(fields or {}), "back": _back(f"/tasks/{task_id}")}
    return await render_template("confirm.html", action=action, question=question,
                                 detail=detail, button=button, fields=fields,
                                 cancel=fields["back"])


@bp.post("/tasks/<task_id>/revoke")
async def revoke_task(task_id: str):
    form = await request.form
    terminate = form.get("terminate") in ("1", "on", "true")
    ask = await _unconfirmed(
        form, task_id, f"/tasks/{task_id}/revoke", f"Stop or revoke task {task_id}?",
        "A waiting task will not run; a running one stops at its next step"
        + (", or within seconds when forced." if terminate else "."),
        "Yes, stop it", {"terminate": "1"} if terminate else {})
    if ask is not None:
        return ask
    try:
        record = await revoke(task_id, terminate)
    except ApiError as exc:
        return await (_flash(exc.message, kind="error", status=exc.status) if _htmx()
                      else _error_page(exc))
    if not _htmx():
        return redirect(local_path(form.get("back"), _back(f"/tasks/{task_id}")), 303)
    verb = "Stop" if record.get("started_at") else "Revoke"
    how = " (forced)" if terminate else ""
    return await _flash(f"{verb}{how} requested for task {task_id}.", link=f"/tasks/{task_id}",
                        link_text="details")


@bp.post("/tasks/<task_id>/retry")
async def retry_task(task_id: str):
    ask = await _unconfirmed(await request.form, task_id, f"/tasks/{task_id}/retry",
                             f"Run task {task_id} again?",
                             "A new task with the same parameters is queued, linked to this one.",
                             "Yes, run it again")
    if ask is not None:
        return ask
    try:
        record = await retry(task_id)
    except ApiError as exc:
        return await (_flash(exc.message, kind="error", status=exc.status) if _htmx()
                      else _error_page(exc))
    new_id = record["task_id"]
    if not _htmx():
        return redirect(f"/tasks/{new_id}", 303)
    return await _flash(f"Retry of {task_id} queued as task {new_id}.", kind="success",
                        link=f"/tasks/{new_id}", link_text="follow it")


# -- autonomous operations --

async def _autonomous_answer(message: str | None = None, link: str | None = None):
    if not _htmx():
        return redirect(_back("/"), 303)
    state = await asyncio.to_thread(autonomous.status, runtime().db)
    panel = await render_template("_autonomous_panel.html", autonomous=state, oob=True)
    flash = ""
    if message:
        flash, _ = await _flash(message, kind="success", link=link, link_text="follow it")
    return flash + panel


@bp.post("/autonomous/start")
@manager_only
async def autonomous_start():
    await set_autonomous(True)
    return await _autonomous_answer()


@bp.post("/autonomous/stop")
@manager_only
async def autonomous_stop():
    ask = await ask_first(await request.form, action="/autonomous/stop",
                          question="Stop autonomous operations?", button="Yes, stop them",
                          detail="The daily operations will no longer be queued.",
                          cancel=_back("/"))
    if ask is not None:
        return ask
    await set_autonomous(False)
    return await _autonomous_answer()


@bp.post("/autonomous/run-daily")
@manager_only
async def autonomous_run_daily():
    try:
        record = await run_daily()
    except ApiError as exc:
        return await (_flash(exc.message, kind="error", status=exc.status) if _htmx()
                      else _error_page(exc))
    if not _htmx():
        return redirect(f"/tasks/{record['task_id']}", 303)
    return await _autonomous_answer(f"Daily operations queued as task {record['task_id']}.",
                                    f"/tasks/{record['task_id']}")


# -- health and stats --

async def _health() -> dict:
    """The health report as the signed-in user may see it."""
    report = await health_report(runtime())
    return seen(AuthorView.health, report)


@bp.get("/health")
async def health():
    rt = runtime()
    report = await _health()
    raised = (await asyncio.to_thread(alerts.recent, rt.db, 20)
              if owner_scope() is None else None)  # what went wrong where is for staff
    return await render_template("health.html", health=report, alerts=raised,
                                 alerts_configured=bool(rt.settings.alert_webhook_url))


@bp.get("/stats")
async def stats():
    db = runtime().db
    try:
        window = stats_window()
    except ApiError as exc:
        return await _error_page(exc)

    def collect() -> dict:
        with reading(db) as conn:  # one checkout for both
            return {"stats": task_stats.window_stats(conn, window), "counts": queries.counts(conn)}

    return await render_template("stats.html", windows=task_stats.WINDOWS,
                                 **await asyncio.to_thread(collect))


# -- generate posts --

async def _saved_books() -> list[dict]:
    """The signed-in user's books, newest first, to write about instead of describing one."""
    return await asyncio.to_thread(books.list_books, runtime().db, current().email, 100)


@bp.get("/generate")
async def generate():
    """The form; after a plain form post, also what it produced (`batch` or `task`)."""
    batch, task_id = request.args.get("batch", ""), request.args.get("task", "")
    posts = None
    if batch.startswith("now-"):  # an immediate batch's posts, kept under its id
        posts = await asyncio.to_thread(batch_posts, runtime().db,
                                        batch[:64], owner_scope())
    form = GenerateForm()
    form.values["user_id"] = current().email
    form.values["book_id"] = request.args.get("book_id", "")[:12]  # "Generate posts" on a book
    return await render_template("generate.html", form=form, posts=posts,
                                 books=await _saved_books(), **await _live_task(task_id[:64]))


async def _live_task(task_id: str, position: str | None = None) -> dict:
    """A queued generation as the task page shows it, to follow on the task's stream."""
    if not task_id:
        return {"queued": None}
    position = await _log_position() if position is None else position
    detail = await asyncio.to_thread(task_detail, runtime(), task_id)
    if detail is None or not can_see(detail["task"]["owner"]):
        return {"queued": None}
    return {"queued": task_id, "live": seen(AuthorView.detail, detail), "position": position}


@bp.post("/generate")
async def generate_post():
    form = parse_generate(await request.form)
    posts, queued, batch, status = None, None, None, 200
    position = await _log_position()  # before queueing: the stream replays what follows
    if form.ok:
        try:
            outcome = await request_generation(form.body)
        except ApiError as exc:
            status = exc.status
            if exc.code == "batch_too_large":  # in words of the form, not of the API
                form.errors["count_per_platform"] = (
                    f"That makes {exc.extra['requested']} posts; at most {exc.extra['limit']} at "
                    "once. Ask for fewer posts per platform, or choose fewer platforms.")
            else:
                form.errors.update(field_errors_from(exc.extra) or {FORM_ERROR: exc.message})
        else:
            if outcome.task is not None:
                queued = outcome.task["task_id"]
            else:
                posts, batch = outcome.posts, outcome.batch_id
    if form.errors:
        status = status if status >= 400 else 400
    elif not _htmx():
        # Redirect after post: the result page can be reloaded without posting again.
        if queued:
            return redirect(f"/generate?task={queued}", 303)
        return redirect(f"/generate?batch={batch}" if batch else "/generate", 303)
    template = "_generate_panel.html" if _htmx() else "generate.html"
    return await render_template(template, form=form, posts=posts, books=await _saved_books(),
                                 **await _live_task(queued or "", position)), status
