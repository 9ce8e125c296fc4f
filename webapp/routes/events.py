"""`GET /api/events`: every task change as server-sent events, resumable with Last-Event-ID."""
from __future__ import annotations

import json

from quart import Blueprint, make_response, request

from jobs.events import Event, Resync
from webapp import runtime
from webapp.auth import owner_scope

bp = Blueprint("events", __name__)


def sse(data: dict, *, event: str | None = None, event_id: str | None = None) -> bytes:
    lines = []
    if event_id:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


@bp.get("/api/events")
async def events():
    rt = runtime()
    scope = owner_scope()
    last_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")

    async def stream():
        yield b"retry: 2000\n\n"
        async for item in rt.bus.subscribe(last_id, keepalive=rt.settings.sse_keepalive):
            if item is None:
                yield b": keep-alive\n\n"
            elif isinstance(item, Resync):
                yield sse({"reason": item.reason, "action": "reload your state"},
                          event="resync", event_id=item.id)
            elif isinstance(item, Event):
                task = item.data.get("task")
                if scope is not None and (task is None or task["owner"] != scope):
                    continue  # not this subscriber's to see
                yield sse(item.data, event=item.data.get("kind", "message"), event_id=item.id)

    response = await make_response(stream(), 200, {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    response.timeout = None
    return response
