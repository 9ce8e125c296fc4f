"""Operations shared by the JSON API and the HTML forms, with their errors as ApiError."""
from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import dataclass

from jobs import books
from jobs.generation import generate_batch
from jobs.runtime import AlreadyFinished, NotFound, NotRetryable, QueueUnavailable
from webapp import runtime
from webapp.errors import ApiError
from webapp.schemas import GeneratePosts


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _queue_down(exc: Exception) -> ApiError:
    return ApiError(503, "queue_unavailable", f"the task queue is unreachable ({exc}); retry shortly")


async def submit(task_type: str, owner: str, params: dict) -> dict:
    try:
        return await asyncio.to_thread(runtime().submit, task_type, owner, params)
    except QueueUnavailable as exc:
        raise _queue_down(exc) from None


@dataclass(frozen=True)
class Generation:
    total: int
    task: dict | None = None        # queued: the task record
    posts: list[dict] | None = None  # answered at once


async def request_generation(body: GeneratePosts) -> Generation:
    """Queue a large (or `async`) batch; write a small one at once."""
    settings = runtime().settings
    total = len(body.platforms) * body.count_per_platform
    if total > settings.max_posts_per_request:
        raise ApiError(400, "batch_too_large",
                       f"{total} posts requested; at most {settings.max_posts_per_request} per "
                       "request: lower count_per_platform or split the request")
    params = body.model_dump(mode="json", exclude={"async_"}, exclude_none=True)
    book_id, params["book"] = await _book_for(body)
    if book_id is not None:
        params["book_id"] = book_id
    if body.async_ or total >= settings.async_threshold:
        return Generation(total, task=await submit("content_generation", body.user_id, params))
    rt = runtime()
    posts = await asyncio.to_thread(generate_batch, rt.settings, rt.db,
                                    batch_id="now-" + secrets.token_hex(10),
                                    owner=body.user_id, params=params)
    return Generation(total, posts=posts)


async def _book_for(body: GeneratePosts) -> tuple[int | None, dict]:
    """The book to write about (its id, and a snapshot of its fields): the one named, a
    one-off one given in full, or the user's latest."""
    if body.book is not None:
        return None, body.book.model_dump(mode="json")
    db = runtime().db
    if body.book_id is not None:
        book = await asyncio.to_thread(books.get_book, db, body.book_id, body.user_id)
        if book is None:
            raise ApiError(404, "book_not_found", f"{body.user_id} has no book {body.book_id}",
                           fields={"book_id": "no such book"})
    else:
        book = await asyncio.to_thread(books.latest_book, db, body.user_id)
        if book is None:
            raise ApiError(400, "no_book",
                           "create a book first (POST /api/books), then generate posts for it",
                           fields={"book_id": "create a book first"})
    return book["id"], {f: book[f] for f in books.FIELDS}


async def revoke(task_id: str, terminate: bool) -> dict:
    try:
        return await asyncio.to_thread(runtime().revoke, task_id, terminate)
    except NotFound:
        raise ApiError(404, "task_not_found", f"no task has id {task_id!r}") from None
    except AlreadyFinished as exc:
        raise ApiError(409, "task_finished",
                       f"task {task_id} already ended as {exc.record['status']}; nothing to revoke",
                       task_status=exc.record["status"]) from None


async def retry(task_id: str) -> dict:
    try:
        return await asyncio.to_thread(runtime().retry, task_id)
    except NotFound:
        raise ApiError(404, "task_not_found", f"no task has id {task_id!r}") from None
    except NotRetryable as exc:
        raise ApiError(409, "task_not_retryable",
                       f"task {task_id} is {exc.record['status']}; only FAILURE or REVOKED "
                       "tasks can be retried", task_status=exc.record["status"]) from None
    except QueueUnavailable as exc:
        raise _queue_down(exc) from None


async def get_task(task_id: str) -> dict:
    record = await asyncio.to_thread(runtime().tracker.get, task_id)
    if record is None:
        raise ApiError(404, "task_not_found", f"no task has id {task_id!r}")
    return record
