"""`GET /api/events`: every task change as server-sent events, resumable with Last-Event-ID."""
from __future__ import annotations

import json

from quart import Blueprint, request

from jobs.events import Event, Resync
from webapp import runtime, sse
from webapp.auth import owner_scope

bp = Blueprint("events", __name__)


@bp.get("/api/events")
async def events():
    rt = runtime()
    scope = owner_scope()
    last_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")

    async def stream():
        yield b"retry: 2000\n\n"
        async for item in rt.bus.subscribe(last_id, keepalive=rt.settings.sse_keepalive):
            if item is None:
                yield sse.KEEPALIVE
            elif isinstance(item, Resync):
                yield sse.message(_json({"reason": item.reason, "action": "reload your state"}),
                                  event="resync", event_id=item.id)
            elif isinstance(item, Event):
                task = item.data.get("task")
                if scope is not None and (task is None or task["owner"] != scope):
                    continue  # not this subscriber's to see
                yield sse.message(_json(item.data), event=item.data.get("kind", "message"),
                                  event_id=item.id)

    return await sse.stream_response(stream())


def _json(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"))
