"""JSON errors: `{"error": "<code>", "message": "<what to do>"}` with a fitting status."""
from __future__ import annotations

import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from quart import Quart, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger("webapp")

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


# The answer to a request the server failed on (the error is logged).
INTERNAL_ERROR = {"code": "internal_error",
                  "message": "the server failed to handle this request; it has been logged"}


def error_response(status: int, code: str, message: str, **extra: object):
    response = jsonify({"error": code, "message": message, **extra})
    response.status_code = status
    return response


async def load_body(model: type[M], *, optional: bool = False) -> M:
    """Parse and validate a JSON body into `model`, or raise a 400 that says what is wrong."""
    raw = await request.get_data()
    if not raw.strip():
        if optional:
            return model()
        raise ApiError(400, "missing_body", "send a JSON object as the request body")
    from webapp.inputs import loads  # here: inputs raises ApiError, defined above
    data = loads(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe(exc),
                       fields={_loc(e): e["msg"] for e in exc.errors()}) from None


def parse_query(model: type[M]) -> M:
    """Validate the query string into `model`, or raise a 400 that says what is wrong."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(400, "invalid_query", describe(exc)) from None


def describe(exc: ValidationError) -> str:
    return "; ".join(f"{_loc(e) or 'body'}: {e['msg']}" for e in exc.errors())


def _loc(error: dict) -> str:
    return ".".join(str(p) for p in error["loc"])


def register(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError):
        if not wants_json() and request.headers.get("HX-Request") != "true":
            # A person on a page (a viewer's button, a manager-only page): an HTML answer.
            page = await render_template("error.html", message=exc.message, status=exc.status)
            return page, exc.status
        response = error_response(exc.status, exc.code, exc.message, **exc.extra)
        if "retry_after" in exc.extra:
            response.headers["Retry-After"] = str(exc.extra["retry_after"])
        return response

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException):
        if not wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception):
        return unexpected(exc)


def unexpected(exc: BaseException):
    """The 500 of an error no rule answers, logged with its traceback."""
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, **INTERNAL_ERROR)


def wants_json() -> bool:
    """API clients get JSON errors; people on pages get HTML."""
    return (request.path.startswith("/api/") or request.path == "/metrics"
            or request.accept_mimetypes.best == "application/json")
