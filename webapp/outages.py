"""Requests that need Redis while it is down answer 503 `queue_unavailable`, and requests
that need a database that does not answer 503 `database_unavailable`: never a 500, and one
log line when the outage starts and one when it ends, not a traceback per request."""
from __future__ import annotations

import redis
from quart import Quart, render_template
from sqlalchemy.exc import DBAPIError

from jobs.outage import database_outage, database_unreachable, redis_outage
from webapp.errors import error_response, unexpected, wants_json

RETRY_AFTER = 5  # seconds: long enough for a restart, short enough to notice recovery


def queue_unavailable_message(detail: str | None = None) -> str:
    why = detail or redis_outage.describe() or "Redis is unreachable"
    return f"the task queue is unavailable ({why}); retry in a few seconds"


async def _unavailable(code: str, message: str):
    """503 with `Retry-After` (JSON), or the error page for a person on a page."""
    if not wants_json():
        return await render_template("error.html", message=message, status=503), 503
    response = error_response(503, code, message)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def register(app: Quart) -> None:
    async def _redis_down(exc: BaseException):
        redis_outage.failed(exc)
        return await _unavailable("queue_unavailable", queue_unavailable_message())

    # Redis's own errors only: a bare OSError may be anything (a full disk is not a queue
    # outage), and a refused command is a bug that should show as one.
    for kind in (redis.ConnectionError, redis.TimeoutError):
        app.register_error_handler(kind, _redis_down)

    @app.errorhandler(DBAPIError)
    async def _database_error(exc: DBAPIError):
        if not database_unreachable(exc):  # a refused statement is a bug: the usual 500
            return unexpected(exc)
        database_outage.failed(exc)
        return await _unavailable(
            "database_unavailable", f"the database is not answering "
            f"({database_outage.describe() or exc.orig}); retry in a few seconds")

