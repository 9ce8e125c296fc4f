"""Operations shared by the JSON API and the HTML forms, with their errors as ApiError."""
from __future__ import annotations

import asyncio
import math
import secrets
from dataclasses import dataclass
from typing import Annotated

from pydantic import HttpUrl, TypeAdapter, UrlConstraints, ValidationError
from quart import current_app, request

from jobs import audit, autonomous, books, webhooks
from jobs.generation import TooManyPosts, generate_batch, in_background, posts_requested
from jobs.runtime import AlreadyFinished, NotFound, NotRetryable, QueueUnavailable
from jobs.writers.llm_http import ProviderError
from webapp import runtime
from webapp.auth import acting_owner, can_see, current
from webapp.errors import ApiError
from webapp.outages import RETRY_AFTER, queue_unavailable_message
from webapp.schemas import BatchTasks, GeneratePosts, GenerationParams
from webapp.sync_pool import PoolFull


def _queue_down(exc: Exception) -> ApiError:
    return ApiError(503, "queue_unavailable", queue_unavailable_message(str(exc)),
                    retry_after=RETRY_AFTER)


def _model_failed(exc: ProviderError) -> ApiError:
    """The model could not write a batch answered at once: 503 when asking again later may
    work (its retries ran out), 502 when it will not until its settings change."""
    if exc.transient:
        return ApiError(503, "model_unavailable",
                        f"the model is unavailable now ({exc.reason}); try again later",
                        retry_after=RETRY_AFTER)
    return ApiError(502, "model_error", f"the model cannot write these posts ({exc.reason})")


_URL = TypeAdapter(Annotated[HttpUrl, UrlConstraints(max_length=2000,
                                                     allowed_schemes=["http", "https"])])


async def callback_url() -> str | None:
    """The `callback_url` of a JSON request that creates a task: checked before the task is
    made, so a bad one is a 400 and no task."""
    if not request.is_json:
        return None
    body = await request.get_json(silent=True)
    raw = body.get("callback_url") if isinstance(body, dict) else None
    if raw is None:
        return None
    try:
        return str(_URL.validate_python(raw))
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", f"callback_url: {exc.errors()[0]['msg']} "
                       "(an http:// or https:// URL)",
                       fields={"callback_url": "an http:// or https:// URL"}) from None


async def _with_callback(record: dict, url: str | None) -> dict:
    if url is not None:
        await asyncio.to_thread(webhooks.register, runtime().db, record["task_id"],
                                current().email, url)
    return record


async def submit(task_type: str, owner: str, params: dict) -> dict:
    """Record and queue a task; with a `callback_url` in the request, POST its record there
    when it ends (signed with the requester's webhook secret)."""
    url = await callback_url()
    try:
        record = await asyncio.to_thread(runtime().submit, task_type, owner, params)
    except QueueUnavailable as exc:
        raise _queue_down(exc) from None
    return await _with_callback(record, url)


@dataclass(frozen=True)
class Generation:
    total: int
    task: dict | None = None        # queued: the task record
    posts: list[dict] | None = None  # answered at once...
    batch_id: str | None = None      # ...and stored under this id


async def request_generation(body: GeneratePosts) -> Generation:
    """Queue a large (or `async`) batch; write a small one at once."""
    settings = runtime().settings
    owner = acting_owner(body.user_id)
    hit = await current_app.extensions["limiter"].hit(
        f"generate:{owner}", settings.generation_rate_limit, 60)
    if hit.refused:
        raise ApiError(429, "rate_limited", f"at most {settings.generation_rate_limit} generation "
                       f"requests a minute; try again in {hit.retry_after} seconds",
                       retry_after=hit.retry_after)
    total, params = await _generation_params(body, owner)
    if not in_background(settings, total, body.async_):
        rt = runtime()
        batch_id = "now-" + secrets.token_hex(10)
        try:
            # Stored once, at the end (step=inf): a model failing half-way stores nothing
            # under an id the client never receives.
            posts = await current_app.extensions["sync_pool"].run(
                generate_batch, rt.settings, rt.db, batch_id=batch_id, owner=owner, params=params,
                step=math.inf)
            return Generation(total, posts=posts, batch_id=batch_id)
        except PoolFull:
            pass  # every slot is writing: queue this one as a task instead
        except ProviderError as exc:
            raise _model_failed(exc) from None
        except TimeoutError:
            raise ApiError(504, "generation_timeout",
                           f"writing the posts took longer than {settings.sync_generation_timeout:g}s;"
                           ' send "async": true to have them written in the background') from None
    params["user_id"] = owner
    return Generation(total, task=await submit("content_generation", owner, params))


async def _generation_params(body: GenerationParams, owner: str) -> tuple[int, dict]:
    """(posts asked for, the task's parameters): size checked, the book resolved."""
    try:
        total = posts_requested(runtime().settings, body.platforms, body.count_per_platform)
    except TooManyPosts as exc:
        raise ApiError(400, "batch_too_large",
                       f"{exc}: lower count_per_platform or split the request",
                       requested=exc.requested, limit=exc.limit) from None
    params = body.model_dump(mode="json", exclude={"async_", "callback_url"}, exclude_none=True)
    book_id, params["book"] = await _book_for(body, owner)
    if book_id is not None:
        params["book_id"] = book_id
    return total, params


async def submit_batch(body: BatchTasks) -> list[dict]:
    """Queue every task of a batch, each validated and tracked as if queued alone; all or
    none (nothing is recorded when one of them is refused, and the generation requests it
    counted are handed back: a refused batch costs no place in the limit)."""
    owner = acting_owner(body.user_id)
    settings = runtime().settings
    limiter = current_app.extensions["limiter"]
    specs, hits = [], []
    try:
        for i, task in enumerate(body.tasks):
            params = task.params.model_dump(mode="json", exclude_none=True)
            if task.type == "content_generation":
                hit = await limiter.hit(f"generate:{owner}", settings.generation_rate_limit, 60)
                if hit.refused:
                    raise ApiError(429, "rate_limited", f"task {i}: at most "
                                   f"{settings.generation_rate_limit} generation requests a minute; "
                                   f"try again in {hit.retry_after} seconds",
                                   retry_after=hit.retry_after)
                hits.append(hit)
                try:
                    _, params = await _generation_params(task.params, owner)
                except ApiError as exc:
                    exc.message = f"task {i}: {exc.message}"
                    raise
                params["user_id"] = owner
            specs.append({"type": task.type, "owner": owner, "params": params})
        try:
            return await asyncio.to_thread(runtime().submit_many, specs)
        except QueueUnavailable as exc:
            raise _queue_down(exc) from None
    except Exception:  # not on cancellation: the tasks may be queued already, so they count
        await limiter.forgive(*hits)
        raise


async def _book_for(body: GenerationParams, owner: str) -> tuple[int | None, dict]:
    """The book to write about (its id, and a snapshot of its fields): the one named, a
    one-off one given in full, or the user's latest."""
    if body.book is not None:
        return None, body.book.model_dump(mode="json")
    db = runtime().db
    if body.book_id is not None:
        book = await asyncio.to_thread(books.get_book, db, body.book_id, owner)
        if book is None:
            raise ApiError(404, "book_not_found", f"{owner} has no book {body.book_id}",
                           fields={"book_id": "no such book"})
    else:
        book = await asyncio.to_thread(books.latest_book, db, owner)
        if book is None:
            raise ApiError(400, "no_book",
                           "create a book first (POST /api/books), then generate posts for it",
                           fields={"book_id": "create a book first"})
    return book["id"], {f: book[f] for f in books.FIELDS}


async def revoke(task_id: str, terminate: bool) -> dict:
    await get_task(task_id)  # 404 unless this user may see it
    try:
        record = await asyncio.to_thread(runtime().revoke, task_id, terminate)
    except NotFound:
        raise ApiError(404, "task_not_found", f"no task has id {task_id!r}") from None
    except AlreadyFinished as exc:
        raise ApiError(409, "task_finished",
                       f"task {task_id} already ended as {exc.record['status']}; nothing to revoke",
                       task_status=exc.record["status"]) from None
    await audit_action("task.stop" if terminate else "task.revoke", task_id)
    return record


async def retry(task_id: str) -> dict:
    await get_task(task_id)
    url = await callback_url()
    try:
        record = await asyncio.to_thread(runtime().retry, task_id)
    except NotFound:
        raise ApiError(404, "task_not_found", f"no task has id {task_id!r}") from None
    except NotRetryable as exc:
        raise ApiError(409, "task_not_retryable",
                       f"task {task_id} is {exc.record['status']}; only FAILURE or REVOKED "
                       "tasks can be retried", task_status=exc.record["status"]) from None
    except QueueUnavailable as exc:
        raise _queue_down(exc) from None
    await audit_action("task.retry", task_id, {"new_task_id": record["task_id"]})
    return await _with_callback(record, url)


async def set_autonomous(enabled: bool) -> dict:
    """Turn the scheduled daily operations on or off; audited."""
    state = await asyncio.to_thread(autonomous.set_enabled, runtime().db, enabled, current().email)
    if state["changed"]:
        await audit_action("autonomous.start" if enabled else "autonomous.stop", None)
    return state


async def run_daily() -> dict:
    """Queue the daily operations now; audited."""
    record = await submit("daily_operations", "system", {"requested_by": current().email})
    await audit_action("autonomous.execute_daily", record["task_id"])
    return record


async def get_task(task_id: str) -> dict:
    record = await asyncio.to_thread(runtime().tracker.get, task_id)
    if record is None or not can_see(record["owner"]):
        raise ApiError(404, "task_not_found", f"no task has id {task_id!r}")
    return record


async def audit_action(action: str, target: str | None, detail: dict | None = None) -> None:
    await asyncio.to_thread(audit.record, runtime().db, current().email, action, target, detail)
