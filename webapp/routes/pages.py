"""Server-rendered pages."""
from __future__ import annotations

import asyncio

from quart import Blueprint, abort, render_template

from jobs import queries
from webapp import runtime
from webapp.health import health_report, queue_stats

bp = Blueprint("pages", __name__)


@bp.get("/")
async def board():
    rt = runtime()
    rows, total = await asyncio.to_thread(queries.list_tasks, rt.db, per_page=50)
    return await render_template("board.html", tasks=rows, total=total)


@bp.get("/tasks/<task_id>")
async def task_detail(task_id: str):
    record = await asyncio.to_thread(runtime().tracker.get, task_id)
    if record is None:
        abort(404)
    return await render_template("task.html", task=record)


@bp.get("/health")
async def health():
    return await render_template("health.html", health=await health_report(runtime()))


@bp.get("/stats")
async def stats():
    return await render_template("stats.html", stats=await queue_stats(runtime()))


@bp.get("/generate")
async def generate():
    return await render_template("generate.html")
