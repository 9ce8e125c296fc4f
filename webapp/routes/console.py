"""The operator's console: workers (and draining one), the periodic schedules (and running
one now). JSON under /api, pages beside them; every change is audited."""
from __future__ import annotations

import asyncio

from quart import Blueprint, jsonify, redirect, render_template, request

from jobs import schedules, workers
from webapp import runtime
from webapp.actions import audit_action, now_iso, submit
from webapp.auth import current, manager_only, owner_scope
from webapp.errors import ApiError

bp = Blueprint("console", __name__)


def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


async def _flash(message: str, *, kind: str = "success", link: str | None = None) -> str:
    return await render_template("_flash.html", message=message, kind=kind, link=link,
                                 link_text="follow it" if link else None)


# -- workers --

async def _workers() -> list[dict]:
    rt = runtime()
    rows = await asyncio.to_thread(workers.list_workers, rt.db, rt.settings.worker_lost_after)
    return rows if owner_scope() is None else workers.for_author(rows)


@bp.get("/api/workers")
async def api_workers():
    return jsonify({"workers": await _workers(), "timestamp": now_iso()})


async def _drain(worker_id: str, draining: bool) -> None:
    try:
        await asyncio.to_thread(workers.set_draining, runtime().db, worker_id, draining)
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

@bp.get("/api/schedules")
async def api_schedules():
    rows = await asyncio.to_thread(schedules.list_schedules, runtime().db)
    return jsonify({"schedules": rows, "timestamp": now_iso()})


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
async def api_run_now(name: str):
    record = await _run_now(name)
    return jsonify({"status": "queued", "schedule": name, "task_id": record["task_id"],
                    "timestamp": now_iso()}), 202


@bp.get("/schedules")
async def schedules_page():
    rows = await asyncio.to_thread(schedules.list_schedules, runtime().db)
    return await render_template("schedules.html", schedules=rows)


@bp.post("/schedules/<name>/run")
@manager_only
async def run_now_form(name: str):
    record = await _run_now(name)
    link = f"/tasks/{record['task_id']}"
    if not _htmx():
        return redirect(link, 303)
    return await _flash(f"{name} queued as task {record['task_id']}.", link=link)
