"""Requests that need Redis while it is down answer 503 `queue_unavailable`, never 500."""
from __future__ import annotations

import redis
from quart import Quart, render_template

from jobs.outage import redis_outage
from webapp.errors import error_response, wants_json

RETRY_AFTER = 5  # seconds: long enough for a restart, short enough to notice recovery


def queue_unavailable_message(detail: str | None = None) -> str:
    why = detail or redis_outage.describe() or "Redis is unreachable"
    return f"the task queue is unavailable ({why}); retry in a few seconds"


def register(app: Quart) -> None:
    async def _redis_down(exc: BaseException):
        redis_outage.failed(exc)
        message = queue_unavailable_message()
        if not wants_json():
            return await render_template("error.html", message=message, status=503), 503
        response = error_response(503, "queue_unavailable", message)
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response

    # Redis's own errors only: a bare OSError may be anything (a full disk is not a queue
    # outage), and a refused command is a bug that should show as one.
    for kind in (redis.ConnectionError, redis.TimeoutError):
        app.register_error_handler(kind, _redis_down)
