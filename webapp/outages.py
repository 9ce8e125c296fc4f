"""Requests that need Redis while it is down answer 503 `queue_unavailable`, and requests
that need a database that does not answer 503 `database_unavailable`: never a 500, and one
log line when the outage starts and one when it ends, not a traceback per request."""
from __future__ import annotations

import logging

import redis
from quart import Quart, render_template, request
from sqlalchemy.exc import DBAPIError

from jobs.outage import database_outage, database_unreachable, redis_outage
from webapp.errors import INTERNAL_ERROR, error_response, wants_json

log = logging.getLogger("webapp.outages")

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

    @app.errorhandler(DBAPIError)
    async def _database_error(exc: DBAPIError):
        if not database_unreachable(exc):  # a refused statement is a bug: the usual 500
            log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
            return error_response(500, **INTERNAL_ERROR)
        database_outage.failed(exc)
        message = (f"the database is not answering ({database_outage.describe() or exc.orig}); "
                   "retry in a few seconds")
        if not wants_json():
            return await render_template("error.html", message=message, status=503), 503
        response = error_response(503, "database_unavailable", message)
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response

