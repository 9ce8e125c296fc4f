"""The plain single status check, answered below Quart's request machinery.

Automation queues status checks one request after the other, and there Quart's own work
per request (request and app contexts, URL matching, hooks, response object and its
conversion) cost more than recording and queueing the task. A `POST /api/status-check`
that needs nothing but the common case is answered here, by the same functions the route
uses: the bearer token's user (auth's token cache), the role rules (`role_refusal`, read
from the route's own markings), the owner rule (`owner_for`), the body's model (`Owner`),
`Runtime.submit_many` in one thread hand-off (record, timeline row, creation event and queue
message; requests arriving meanwhile go together, see GroupSubmit), the route's answer (`status_check_answer`) and the headers every answer carries.

Anything else goes to the route unchanged, body included: no or an unknown token, a
refusal of any kind, an `Idempotency-Key`, a `callback_url`, a query string, a form-typed
body, a body that is not a small JSON object the model accepts, and a queue that is down
(the route answers its 503; the refused attempt left nothing behind). So every refusal has one owner, the
route; an unexpected failure here answers the route's 500 body and is logged.
"""
from __future__ import annotations

import asyncio
import json
import logging

from pydantic import ValidationError

from jobs.runtime import QueueUnavailable
from webapp.auth import bearer_token, owner_for, role_refusal
from webapp.errors import INTERNAL_ERROR, ApiError
from webapp.inputs import FORM_TYPES, loads
from webapp.routes.api import status_check_answer
from webapp.schemas import Owner
from webapp.security import response_headers

log = logging.getLogger("webapp.direct_enqueue")

PATH = "/api/status-check"
ENDPOINT = "api.status_check"
MAX_BODY = 1024  # a larger body is not the plain case: the route reads it


class DirectEnqueue:
    """ASGI middleware in front of the Quart app `app` (its `asgi_app` is `inner`)."""

    def __init__(self, inner, app) -> None:
        self.inner = inner
        self.app = app
        self.group: GroupSubmit | None = None

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST"
                or scope["query_string"]):
            return await self.inner(scope, receive, send)
        token: str | None = None
        plain = True
        for name, value in scope["headers"]:
            if name == b"authorization":
                if token is None:  # the first one: the route reads that one
                    token = bearer_token(value.decode("latin-1"))
            elif name == b"idempotency-key":
                plain = False
            elif name == b"content-type":
                # The route reads a form-typed body as form fields (and refuses what they
                # cannot store, webapp/inputs.py), whatever the body looks like.
                mimetype = value.decode("latin-1").split(";", 1)[0].strip().lower()
                plain = plain and mimetype not in FORM_TYPES
        read, body, more = [], b"", True
        while more and len(body) <= MAX_BODY:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break  # the client has gone: the route sees it too
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if (plain and token and not more and len(body) <= MAX_BODY
                and read[-1]["type"] == "http.request"):
            try:
                answer = await self._answer(token, body)
            except Exception:
                log.exception("unhandled error on POST %s", PATH)
                return await _send_json(send, scope, 500, {"error": INTERNAL_ERROR["code"],
                                                           "message": INTERNAL_ERROR["message"]})
            if answer is not None:
                return await _send_json(send, scope, 202, answer)
        await self.inner(scope, _replay(receive, read), send)

    async def _answer(self, token: str, body: bytes) -> dict | None:
        """The answer of a task queued here, or None when the route should answer."""
        requested = _requested_owner(body)
        if requested is False:
            return None
        tokens = self.app.extensions["tokens"]
        user = tokens.get(token) or await asyncio.to_thread(tokens.lookup, token)
        view = self.app.view_functions.get(ENDPOINT)
        if user is None or view is None or role_refusal(view, user, "POST") is not None:
            return None
        try:
            owner = owner_for(user, requested)
        except ApiError:
            return None
        if self.group is None:
            self.group = GroupSubmit(self.app.extensions["runtime"])
        try:
            record = await self.group.submit({"type": "status_check", "owner": owner, "params": {}})
        except QueueUnavailable:
            return None  # taken back: the route tries once more and answers the 503
        return status_check_answer(record)


class GroupSubmit:
    """Tasks asked for while earlier ones are being recorded go together: one thread hand-off,
    one transaction and one Redis round trip for the lot (Runtime.submit_many: all or none,
    each task tracked as if queued alone). A lone request waits for nothing: it goes at once,
    as a group of one. Several clients at once (or one with several connections) then cost
    the database and Redis a fraction per task."""

    MAX_GROUP = 200

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self._waiting: list[tuple[dict, asyncio.Future]] = []
        self._drain: asyncio.Task | None = None

    async def submit(self, spec: dict) -> dict:
        """Record and queue one task ({type, owner, params}); its record."""
        answer = asyncio.get_running_loop().create_future()
        self._waiting.append((spec, answer))
        if self._drain is None:
            self._drain = asyncio.create_task(self._run())
        return await answer

    async def _run(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[:self.MAX_GROUP]
                del self._waiting[:self.MAX_GROUP]
                try:
                    records = await asyncio.to_thread(self.runtime.submit_many,
                                                      [spec for spec, _ in group])
                except Exception as exc:  # each request answers it (QueueUnavailable: a 503)
                    for _, answer in group:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for (_, answer), record in zip(group, records, strict=True):
                    if not answer.done():  # a request whose client left: its task stands
                        answer.set_result(record)
        finally:
            self._drain = None


def _requested_owner(body: bytes) -> str | None | bool:
    """The body's `user_id` (None: the caller), or False when the route should read it."""
    if not body.strip():
        return None
    try:
        data = loads(body)
        if not isinstance(data, dict) or "callback_url" in data:
            return False
        return Owner.model_validate(data).user_id
    except (ApiError, ValidationError):
        return False


def _replay(receive, read: list[dict]):
    """`receive` for the route: the messages read here first, then the rest."""
    async def replayed():
        return read.pop(0) if read else await receive()
    return replayed


async def _send_json(send, scope, status: int, data: dict) -> None:
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode())
                for name, value in response_headers(scope.get("scheme") == "https")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
