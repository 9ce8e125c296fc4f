"""The JSON API: the seed's endpoints (same paths, fields and keys) and a few more."""
from __future__ import annotations

import asyncio

from quart import Blueprint, Response, current_app, jsonify
from quart_schema import document_querystring, document_request

from jobs import autonomous, queries
from jobs.models import now_iso
from jobs.posts import batch_posts
from webapp import runtime
from webapp.actions import (get_task, request_generation, retry, revoke, run_daily,
                             set_autonomous, submit, submit_batch)
from webapp.auth import (acting_owner, current, manager_only, metrics_reader, owner_filter,
                         owner_scope)
from webapp.errors import ApiError, load_body, parse_query
from webapp.health import health_report, queue_stats, stats_window
from webapp.role_views import AuthorView, seen
from webapp.idempotency import idempotent
from webapp.routes.posts import approval_of_plan
from webapp.schemas import (ActiveQuery, ApprovePosts, BatchTasks, GeneratePosts, Owner, Revoke,
                            TaskQuery)

bp = Blueprint("api", __name__)


@bp.post("/api/generate-posts")
@idempotent
@document_request(GeneratePosts)
async def generate_posts():
    outcome = await request_generation(await load_body(GeneratePosts))
    if outcome.task is not None:
        return jsonify({
            "status": "content_generation_queued",
            "task_id": outcome.task["task_id"],
            "timestamp": now_iso(),
            "message": f"Generating {outcome.total} posts in background. "
                       "Check task status for results.",
        }), 202
    return jsonify({"posts_generated": len(outcome.posts), "posts": outcome.posts,
                    "timestamp": now_iso()})


@bp.get("/api/task-status/<task_id>")
async def task_status(task_id: str):
    return jsonify(seen(AuthorView.task, await get_task(task_id)))


@bp.get("/api/tasks/active")
@document_querystring(ActiveQuery)
async def active_tasks():
    rt = runtime()
    query = parse_query(ActiveQuery)
    listed, total = await asyncio.to_thread(queries.active_summaries, rt.db, rt.mode,
                                            owner_scope(), query.limit)
    # count: all of them; the list shows the oldest `limit`
    return jsonify({"active_tasks": seen(AuthorView.tasks, listed), "count": total, "limit": query.limit})


@bp.get("/api/tasks")
@document_querystring(TaskQuery)
async def list_tasks():
    query = parse_query(TaskQuery)
    if query.before and query.after:
        raise ApiError(400, "invalid_query", "give one of before and after, not both")
    for cursor in (query.before, query.after):
        if cursor:
            try:
                queries.decode_cursor(cursor)
            except ValueError as exc:
                raise ApiError(400, "invalid_query", f"{exc}: use the older/newer value of a "
                               "previous answer") from None
    result = await asyncio.to_thread(
        queries.task_page, runtime().db, statuses=(query.status,) if query.status else None,
        task_type=query.type, owner=owner_filter(query.owner, "tasks"), id_prefix=query.q,
        page=query.page, per_page=query.per_page, before=query.before, after=query.after)
    return jsonify({"tasks": seen(AuthorView.tasks, result.tasks), "total": result.total, "total_exact": result.total_exact,
                    "page": query.page, "per_page": query.per_page,
                    "older": result.older, "newer": result.newer})


@bp.post("/api/tasks/revoke/<task_id>")
@document_request(Revoke)
async def revoke_task(task_id: str):
    body = await load_body(Revoke, optional=True)
    record = await revoke(task_id, body.terminate)
    return jsonify({"status": "revoked", "task_id": task_id, "terminate": body.terminate,
                    "task": seen(AuthorView.task, record), "timestamp": now_iso()})


@bp.post("/api/tasks/retry/<task_id>")
@idempotent
async def retry_task(task_id: str):
    record = await retry(task_id)
    return jsonify({"status": "retry_queued", "task_id": record["task_id"],
                    "retry_of": task_id, "timestamp": now_iso()}), 202


@bp.get("/api/tasks/<task_id>/timeline")
async def task_timeline(task_id: str):
    rt = runtime()
    await get_task(task_id)
    timeline = await asyncio.to_thread(rt.tracker.timeline, task_id)
    return jsonify({"task_id": task_id, "timeline": seen(AuthorView.timeline, timeline)})


@bp.get("/api/tasks/<task_id>/posts")
async def task_posts(task_id: str):
    rt = runtime()
    await get_task(task_id)
    posts = await asyncio.to_thread(batch_posts, rt.db, task_id)
    return jsonify({"task_id": task_id, "posts": posts, "count": len(posts)})


@bp.post("/api/autonomous/start")
@manager_only
async def autonomous_start():
    state = await set_autonomous(True)
    return jsonify({"status": "autonomous_operation_started", "timestamp": now_iso(),
                    "already_running": not state["changed"]})


@bp.post("/api/autonomous/stop")
@manager_only
async def autonomous_stop():
    state = await set_autonomous(False)
    return jsonify({"status": "autonomous_operation_stopped", "timestamp": now_iso(),
                    "already_stopped": not state["changed"]})


@bp.get("/api/autonomous/status")
async def autonomous_status():
    status = await asyncio.to_thread(autonomous.status, runtime().db)
    return jsonify(seen(AuthorView.autonomous, status))


@bp.post("/api/autonomous/execute-daily")
@idempotent
@manager_only
async def execute_daily():
    record = await run_daily()
    return jsonify({"status": "daily_operations_queued", "task_id": record["task_id"],
                    "timestamp": now_iso(),
                    "message": "Daily operations started in background."}), 202


@bp.post("/api/reports/weekly")
@idempotent
@manager_only
async def weekly_report():
    record = await submit("weekly_report", "system", {"requested_by": current().email})
    return jsonify({"status": "weekly_report_queued", "task_id": record["task_id"],
                    "timestamp": now_iso()}), 202


@bp.post("/api/posts/approve")
@idempotent
@document_request(ApprovePosts)
async def approve_posts():
    body = await load_body(ApprovePosts)
    if body.task_id is not None:
        owner, params = await approval_of_plan(body.task_id, body.user_id)
    else:
        owner, params = acting_owner(body.user_id), {"post_ids": body.post_ids}
    record = await submit("post_approval", owner, params)
    return jsonify({"status": "post_approval_queued", "task_id": record["task_id"],
                    "timestamp": now_iso()}), 202


@bp.post("/api/status-check")
@idempotent
@document_request(Owner)
async def status_check():
    body = await load_body(Owner, optional=True)
    record = await submit("status_check", acting_owner(body.user_id), {})
    return jsonify(status_check_answer(record)), 202


def status_check_answer(record: dict) -> dict:
    """The 202 answer to a queued status check (also sent by webapp/direct_enqueue.py)."""
    return {"status": "status_check_queued", "task_id": record["task_id"], "timestamp": now_iso()}


@bp.post("/api/tasks/batch")
@idempotent
@document_request(BatchTasks)
async def batch_tasks():
    """Queue up to 1,000 tasks in one request, all or none; each is tracked as usual."""
    records = await submit_batch(await load_body(BatchTasks))
    return jsonify({"task_ids": [r["task_id"] for r in records], "count": len(records),
                    "timestamp": now_iso()}), 202


@bp.get("/api/health")
async def health():
    report = await health_report(runtime())
    status = 503 if report["status"] == "unhealthy" else 200
    return jsonify(seen(AuthorView.health, report)), status


@bp.get("/api/tasks/stats")
async def stats():
    stats = await queue_stats(runtime(), stats_window())
    return jsonify(seen(AuthorView.stats, stats))


@bp.get("/metrics")
@metrics_reader
async def metrics():
    """For managers, and for Prometheus with `Authorization: Bearer <METRICS_TOKEN>`."""
    body = await asyncio.to_thread(current_app.extensions["metrics"].render)
    return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")
