"""`Idempotency-Key` for every POST that creates work: apply `@idempotent` to the view.

Same key and same request within 24 hours: the first answer again (same `task_id`), nothing
queued; same key with another request: 422 `idempotency_key_reused`; while the first request
is still being answered: 409 `idempotency_in_progress`. Refusals (4xx, 5xx) are not kept, so a
client retrying after a 503 gets its work done once the service is back.
"""
from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable

from quart import jsonify, make_response, request

from jobs import idempotency
from webapp import runtime
from webapp.auth import current
from webapp.errors import ApiError

HEADER = "Idempotency-Key"
MAX_KEY = 200


def idempotent(view: Callable) -> Callable:
    @functools.wraps(view)
    async def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return await view(*args, **kwargs)
        if not 0 < len(key) <= MAX_KEY or not key.isprintable():
            raise ApiError(400, "invalid_idempotency_key",
                           f"{HEADER} must be 1 to {MAX_KEY} printable characters")
        user_id = current().id
        digest = idempotency.request_hash(request.method, request.path, await request.get_data())
        found = await asyncio.to_thread(idempotency.claim, runtime().db, user_id, key, digest)
        if found.outcome == "replay":
            response = jsonify(found.response)  # the first answer's bytes: same encoder
            response.status_code = found.status
            response.headers["Idempotent-Replayed"] = "true"
            return response
        if found.outcome == "mismatch":
            raise ApiError(422, "idempotency_key_reused",
                           f"this {HEADER} was used for a different request in the last 24 "
                           "hours; use a new key for new work")
        if found.outcome == "in_progress":
            raise ApiError(409, "idempotency_in_progress",
                           f"a request with this {HEADER} is still being answered; retry shortly",
                           retry_after=1)
        # Shielded: a client that disconnects mid-request must not leave work created but
        # its key forgotten, or its retry would create the work again.
        return await asyncio.shield(asyncio.ensure_future(_answer(view, args, kwargs, key, user_id)))
    return wrapper


async def _answer(view: Callable, args, kwargs, key: str, user_id: int):
    db = runtime().db
    try:
        response = await make_response(await view(*args, **kwargs))
    except BaseException:
        await asyncio.to_thread(idempotency.release, db, user_id, key)
        raise
    if response.status_code >= 400 or response.mimetype != "application/json":
        # Only work done is remembered: a refused request may be sent again as it is.
        await asyncio.to_thread(idempotency.release, db, user_id, key)
        return response
    body = json.loads(await response.get_data())
    await asyncio.to_thread(idempotency.store, db, user_id, key, response.status_code, body)
    return response
