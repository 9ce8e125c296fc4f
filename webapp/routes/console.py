"""The operator's console: acting on every task that matches a filter, pausing the queue,
alerts, completion webhooks, workers (and draining one), the periodic schedules (and running
one now). JSON under /api, pages and forms beside them; every change is audited."""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from pydantic import ValidationError
from quart import Blueprint, jsonify, redirect, render_template, request
from quart_schema import document_request

from jobs import alerts, bulk, pause, schedules, webhooks, workers
from jobs.models import now_iso
from jobs.runtime import QueueUnavailable
from webapp import runtime
from webapp.actions import _queue_down, audit_action, get_task, submit
from webapp.auth import any_signed_in_user, current, manager_only, owner_scope
from webapp.confirmation import ask_first
from webapp.errors import ApiError, describe, load_body
from webapp.idempotency import idempotent
from webapp.role_views import AuthorView, seen, webhook_seen
from webapp.routes.pages import _flash as _flash_fragment
from webapp.routes.pages import _htmx
from webapp.schemas import BulkAction, QueueTarget

bp = Blueprint("console", __name__)


async def _flash(message: str, *, link: str | None = None) -> str:
    html, _ = await _flash_fragment(message, kind="success", link=link,
                                    link_text="follow it" if link else None)
    return html


def _from_form(model, data: dict):
    """A form's fields checked by the API's own model; a 400 that says what is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe(exc)) from None


# -- bulk actions --

async def bulk_action(body: BulkAction) -> dict:
    """Count (dry run) or act on every task matching the filter; an author's own tasks only."""
    f = body.filter
    scope = owner_scope()
    task_filter = bulk.TaskFilter(status=f.status, type=f.type, owner=scope or f.owner, q=f.q)
    shown = {k: v for k, v in vars(task_filter).items() if v}
    rt = runtime()
    if body.dry_run:
        matched, done = await asyncio.to_thread(bulk.count, rt.db, body.action, task_filter), 0
    else:
        try:
            if body.action == "revoke":
                matched, done = await asyncio.to_thread(bulk.revoke, rt, task_filter, body.terminate)
            else:
                matched, done = await asyncio.to_thread(bulk.retry, rt, task_filter)
        except QueueUnavailable as exc:
            raise _queue_down(exc) from None
        await audit_action(f"tasks.bulk_{body.action}", None, {
            "filter": shown, "matched": matched, "done": done, "terminate": body.terminate})
    return {"action": body.action, "dry_run": body.dry_run, "matched": matched, "done": done,
            "filter": shown, "timestamp": now_iso()}


@bp.post("/api/tasks/bulk")
@idempotent
@document_request(BulkAction)
async def api_bulk():
    return jsonify(await bulk_action(await load_body(BulkAction)))


BULK_WORDS = {"revoke": ("Revoke", "revoked", "Waiting tasks will not run; running ones stop at "
                                              "their next step."),
              "retry": ("Retry", "queued again", "Each failed or revoked task is queued again as a "
                                                 "new task linked to it (once).")}


@bp.post("/tasks/bulk")
async def bulk_form():
    """The board's "revoke/retry all matching": first a confirmation stating the count, then
    the action. With htmx both answers go to the flash area; without, they are pages."""
    form = await request.form
    raw_filter = {k: form.get(k, "").strip() for k in ("status", "type", "owner", "q")}
    body = _from_form(BulkAction, {
        "action": form.get("action", ""), "terminate": form.get("terminate") == "1",
        "filter": {k: v for k, v in raw_filter.items() if v},
        "dry_run": form.get("confirmed") != "yes"})
    result = await bulk_action(body)
    verb, done_word, detail = BULK_WORDS[body.action]
    if body.dry_run:
        template = "_bulk_confirm.html" if _htmx() else "bulk_confirm.html"
        return await render_template(template, result=result, verb=verb, detail=detail,
                                     fields={**raw_filter, "action": body.action,
                                             "terminate": "1" if body.terminate else ""})
    message = f"{result['done']} of {result['matched']} matching task(s) {done_word}."
    if not _htmx():  # back to the board, filtered as it was
        return redirect("/?" + urlencode({k: v for k, v in raw_filter.items() if v}), 303)
    return await _flash(message)


# -- pause and resume --

async def set_paused(paused: bool, task_type: str | None) -> dict:
    """Pause or resume one type (None: all); audited when it changed something. Resuming
    queues the waiting tasks again."""
    rt = runtime()
    if paused:
        pauses, changed = await asyncio.to_thread(pause.pause, rt.db, task_type, current().email)
        requeued = 0
    else:
        pauses, changed = await asyncio.to_thread(pause.resume, rt.db, task_type)
        requeued = await asyncio.to_thread(pause.requeue_waiting, rt, pauses) if changed else 0
    if changed:
        await audit_action("queue.pause" if paused else "queue.resume", task_type or "all types",
                           {"requeued": requeued} if not paused else None)
    return {"paused": pauses, "changed": changed, "requeued": requeued, "timestamp": now_iso()}


@bp.get("/api/queue")
async def api_queue():
    paused = await asyncio.to_thread(pause.read, runtime().db)
    return jsonify({"paused": seen(AuthorView.pauses, paused), "timestamp": now_iso()})


@bp.post("/api/queue/pause")
@manager_only
@document_request(QueueTarget)
async def api_pause():
    body = await load_body(QueueTarget, optional=True)
    return jsonify(await set_paused(True, body.type))


@bp.post("/api/queue/resume")
@manager_only
@document_request(QueueTarget)
async def api_resume():
    body = await load_body(QueueTarget, optional=True)
    return jsonify(await set_paused(False, body.type))


async def _pause_form(paused: bool):
    form = await request.form
    if paused:
        what = form.get("type") or "the queue"
        ask = await ask_first(form, action="/queue/pause", question=f"Pause {what}?",
                              detail="Queued tasks wait until you resume; running ones finish.",
                              button="Yes, pause", cancel="/", keep=("type",))
        if ask is not None:
            return ask
    target = _from_form(QueueTarget, {"type": form.get("type") or None})
    result = await set_paused(paused, target.type)
    if not _htmx():
        return redirect("/", 303)
    what = target.type or "every task type"
    if paused:
        message = f"Paused {what}: queued tasks wait, running ones finish."
    else:
        message = f"Resumed {what}; {result['requeued']} waiting task(s) queued again."
    panel = await render_template("_pause_panel.html", paused=result["paused"], oob=True)
    return await _flash(message) + panel


@bp.post("/queue/pause")
@manager_only
async def pause_form():
    return await _pause_form(True)


@bp.post("/queue/resume")
@manager_only
async def resume_form():
    return await _pause_form(False)


# -- alerts --

@bp.get("/api/alerts")
@manager_only
async def api_alerts():
    rows = await asyncio.to_thread(alerts.recent, runtime().db)
    return jsonify({"alerts": rows, "webhook_configured": bool(runtime().settings.alert_webhook_url)})


# -- completion webhooks --

@bp.get("/api/tasks/<task_id>/deliveries")
async def api_deliveries(task_id: str):
    await get_task(task_id)  # 404 unless this user may see it
    hook = await asyncio.to_thread(webhooks.deliveries, runtime().db, task_id)
    return jsonify({"task_id": task_id, "webhook": webhook_seen(hook)})


@bp.get("/api/webhook-secret")
async def api_webhook_secret():
    secret = await asyncio.to_thread(webhooks.secret_for, runtime().db, current().email)
    return jsonify({"secret": secret, "signature_header": "X-Signature",
                    "scheme": "t=<unix time>,v1=hex(HMAC-SHA256(secret, '<t>.<body>'))"})


@bp.post("/api/webhook-secret")
@any_signed_in_user
async def api_rotate_webhook_secret():
    secret = await asyncio.to_thread(webhooks.secret_for, runtime().db, current().email,
                                     rotate=True)
    await audit_action("webhook.secret_rotate", current().email)
    return jsonify({"secret": secret})


# -- workers --

async def _workers() -> list[dict]:
    rt = runtime()

    def read() -> list[dict]:  # the shared clock may ask Redis for its time: off the loop too
        return workers.list_workers(rt.db, rt.settings.worker_lost_after, now=rt.clock.now())
    rows = await asyncio.to_thread(read)
    return seen(AuthorView.workers, rows)


@bp.get("/api/workers")
async def api_workers():
    return jsonify({"workers": await _workers(), "timestamp": now_iso()})


async def _drain(worker_id: str, draining: bool) -> None:
    try:
        rt = runtime()
        await asyncio.to_thread(lambda: workers.set_draining(rt.db, worker_id, draining,
                                                             now=rt.clock.now()))
    except workers.UnknownWorker:
        raise ApiError(404, "worker_not_found", f"no worker has id {worker_id!r}; "
                       "GET /api/workers lists them") from None
    await audit_action("worker.drain" if draining else "worker.undrain", worker_id)


@bp.post("/api/workers/<worker_id>/drain")
@manager_only
async def api_drain(worker_id: str):
    await _drain(worker_id, True)
    return jsonify({"status": "draining", "worker": worker_id, "timestamp": now_iso()})


@bp.post("/api/workers/<worker_id>/undrain")
@manager_only
async def api_undrain(worker_id: str):
    await _drain(worker_id, False)
    return jsonify({"status": "running", "worker": worker_id, "timestamp": now_iso()})


@bp.get("/workers")
async def workers_page():
    return await render_template("workers.html", workers=await _workers())


@bp.get("/workers/table")
async def workers_table():
    """The table alone: the page re-reads it every few seconds (heartbeats are not events)."""
    return await render_template("_workers_table.html", workers=await _workers())


async def _drain_form(worker_id: str, draining: bool):
    if draining:
        ask = await ask_first(await request.form, action=f"/workers/{worker_id}/drain",
                              question=f"Drain worker {worker_id}?", button="Yes, drain it",
                              detail="It finishes its current tasks and takes no new ones.",
                              cancel="/workers")
        if ask is not None:
            return ask
    await _drain(worker_id, draining)
    if not _htmx():
        return redirect("/workers", 303)
    verb = "Draining" if draining else "Undrained"
    flash = await _flash(f"{verb} worker {worker_id}." + (
        " It finishes its current tasks and takes no new ones." if draining else ""))
    table = await render_template("_workers_table.html", workers=await _workers(), oob=True)
    return flash + table


@bp.post("/workers/<worker_id>/drain")
@manager_only
async def drain_form(worker_id: str):
    return await _drain_form(worker_id, True)


@bp.post("/workers/<worker_id>/undrain")
@manager_only
async def undrain_form(worker_id: str):
    return await _drain_form(worker_id, False)


# -- schedules --

async def _schedules() -> dict:
    db, scope = runtime().db, owner_scope()
    listed = await asyncio.to_thread(schedules.list_schedules, db)
    return {"schedules": seen(AuthorView.schedules, listed),
            "dated_work": await asyncio.to_thread(schedules.dated_work, db, scope)}


@bp.get("/api/schedules")
async def api_schedules():
    return jsonify({**await _schedules(), "timestamp": now_iso()})


async def _run_now(name: str) -> dict:
    schedule = schedules.find(name)
    if schedule is None:
        raise ApiError(404, "schedule_not_found", f"no schedule is named {name!r}; "
                       "GET /api/schedules lists them")
    record = await submit(schedule.task_type, "system",
                          {"requested_by": current().email, "schedule": name})
    await audit_action("schedule.run", name, {"task_id": record["task_id"]})
    return record


@bp.post("/api/schedules/<name>/run")
@manager_only
@idempotent
async def api_run_now(name: str):
    record = await _run_now(name)
    return jsonify({"status": "queued", "schedule": name, "task_id": record["task_id"],
                    "timestamp": now_iso()}), 202


@bp.get("/schedules")
async def schedules_page():
    return await render_template("schedules.html", **await _schedules())


@bp.post("/schedules/<name>/run")
@manager_only
async def run_now_form(name: str):
    record = await _run_now(name)
    link = f"/tasks/{record['task_id']}"
    if not _htmx():
        return redirect(link, 303)
    return await _flash(f"{name} queued as task {record['task_id']}.", link=link)
