"""The JSON API: the seed's endpoints (same paths, fields and keys) and a few more."""
from __future__ import annotations

import asyncio
import datetime as dt
import secrets

from quart import Blueprint, Response, current_app, jsonify, request
from quart_schema import document_querystring, document_request

from jobs import autonomous, queries
from jobs.generation import batch_seed, book_from_params, generate
from jobs.posts import store_post
from jobs.runtime import AlreadyFinished, NotFound, QueueUnavailable
from jobs.writers import make_writer
from webapp import runtime
from webapp.errors import ApiError, load_body
from webapp.health import health_report, queue_stats
from webapp.schemas import ApprovePosts, GeneratePosts, Owner, Revoke, TaskQuery

bp = Blueprint("api", __name__)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


async def submit(task_type: str, owner: str, params: dict) -> dict:
    try:
        return await asyncio.to_thread(runtime().submit, task_type, owner, params)
    except QueueUnavailable as exc:
        raise ApiError(503, "queue_unavailable",
                       f"the task queue is unreachable ({exc}); retry shortly") from None


@bp.post("/api/generate-posts")
@document_request(GeneratePosts)
async def generate_posts():
    body = await load_body(GeneratePosts)
    settings = runtime().settings
    total = len(body.platforms) * body.count_per_platform
    if total > settings.max_posts_per_request:
        raise ApiError(400, "batch_too_large",
                       f"{total} posts requested; at most {settings.max_posts_per_request} per "
                       "request: lower count_per_platform or split the request")
    params = body.model_dump(exclude={"async_"}, exclude_none=True)
    if body.async_ or total >= settings.async_threshold:
        record = await submit("content_generation", body.user_id, params)
        return jsonify({
            "status": "content_generation_queued",
            "task_id": record["task_id"],
            "timestamp": now_iso(),
            "message": f"Generating {total} posts in background. Check task status for results.",
        }), 202
    posts = await asyncio.to_thread(_generate_now, body.user_id, params)
    return jsonify({"posts_generated": len(posts), "posts": posts, "timestamp": now_iso()})


def _generate_now(owner: str, params: dict) -> list[dict]:
    rt = runtime()
    batch_id = "now-" + secrets.token_hex(10)
    writer = make_writer(**rt.settings.writer_options())
    made = []
    for seq, post in enumerate(generate(
            writer, book_from_params(params), params["platforms"], params["count_per_platform"],
            seed=params.get("seed", batch_seed(batch_id)), today=dt.date.today(),
            mastodon_limit=rt.settings.mastodon_limit)):
        store_post(rt.db, batch_id=batch_id, seq=seq, owner=owner, post=post)
        made.append(post)
    return made


@bp.get("/api/task-status/<task_id>")
async def task_status(task_id: str):
    record = await asyncio.to_thread(runtime().tracker.get, task_id)
    if record is None:
        raise ApiError(404, "task_not_found", f"no task has id {task_id!r}")
    return jsonify(record)


@bp.get("/api/tasks/active")
async def active_tasks():
    rt = runtime()
    rows = await asyncio.to_thread(queries.active_tasks, rt.db)
    return jsonify({
        "active_tasks": [{
            "task_id": r["task_id"], "type": rt.mode, "name": r["type"], "worker": r["worker"],
            "status": r["status"], "progress": r["progress"], "owner": r["owner"],
            "enqueued_at": r["enqueued_at"], "started_at": r["started_at"],
        } for r in rows],
        "count": len(rows),
    })


@bp.get("/api/tasks")
@document_querystring(TaskQuery)
async def list_tasks():
    try:
        query = TaskQuery.model_validate(request.args.to_dict())
    except ValueError as exc:
        raise ApiError(400, "invalid_query", str(exc).splitlines()[0]) from None
    rows, total = await asyncio.to_thread(
        queries.list_tasks, runtime().db, status=query.status, task_type=query.type,
        owner=query.owner, id_prefix=query.q, page=query.page, per_page=query.per_page)
    return jsonify({"tasks": rows, "total": total, "page": query.page, "per_page": query.per_page})


@bp.post("/api/tasks/revoke/<task_id>")
@document_request(Revoke)
async def revoke_task(task_id: str):
    body = await load_body(Revoke, optional=True)
    try:
        record = await asyncio.to_thread(runtime().revoke, task_id, body.terminate)
    except NotFound:
        raise ApiError(404, "task_not_found", f"no task has id {task_id!r}") from None
    except AlreadyFinished as exc:
        raise ApiError(409, "task_finished",
                       f"task {task_id} already ended as {exc.record['status']}; nothing to revoke",
                       task_status=exc.record["status"]) from None
    return jsonify({"status": "revoked", "task_id": task_id, "terminate": body.terminate,
                    "task": record, "timestamp": now_iso()})


@bp.post("/api/autonomous/start")
async def autonomous_start():
    state = await asyncio.to_thread(autonomous.set_enabled, runtime().db, True, "api")
    return jsonify({"status": "autonomous_operation_started", "timestamp": now_iso(),
                    "already_running": not state["changed"]})


@bp.post("/api/autonomous/stop")
async def autonomous_stop():
    state = await asyncio.to_thread(autonomous.set_enabled, runtime().db, False, "api")
    return jsonify({"status": "autonomous_operation_stopped", "timestamp": now_iso(),
                    "already_stopped": not state["changed"]})


@bp.get("/api/autonomous/status")
async def autonomous_status():
    return jsonify(await asyncio.to_thread(autonomous.status, runtime().db))


@bp.post("/api/autonomous/execute-daily")
async def execute_daily():
    record = await submit("daily_operations", "system", {"requested": now_iso()})
    return jsonify({"status": "daily_operations_queued", "task_id": record["task_id"],
                    "timestamp": now_iso(),
                    "message": "Daily operations started in background."}), 202


@bp.post("/api/reports/weekly")
async def weekly_report():
    record = await submit("weekly_report", "system", {"requested": now_iso()})
    return jsonify({"status": "weekly_report_queued", "task_id": record["task_id"],
                    "timestamp": now_iso()}), 202


@bp.post("/api/posts/approve")
@document_request(ApprovePosts)
async def approve_posts():
    body = await load_body(ApprovePosts)
    record = await submit("post_approval", body.user_id, {"post_ids": body.post_ids})
    return jsonify({"status": "post_approval_queued", "task_id": record["task_id"],
                    "timestamp": now_iso()}), 202


@bp.post("/api/status-check")
@document_request(Owner)
async def status_check():
    body = await load_body(Owner, optional=True)
    record = await submit("status_check", body.user_id, {})
    return jsonify({"status": "status_check_queued", "task_id": record["task_id"],
                    "timestamp": now_iso()}), 202


@bp.get("/api/health")
async def health():
    report = await health_report(runtime())
    return jsonify(report), 503 if report["status"] == "unhealthy" else 200


@bp.get("/api/tasks/stats")
async def stats():
    return jsonify(await queue_stats(runtime()))


@bp.get("/metrics")
async def metrics():
    body = await asyncio.to_thread(current_app.extensions["metrics"].render)
    return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")
