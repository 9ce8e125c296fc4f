"""`GET /api/events`: every task change as server-sent events, resumable with Last-Event-ID."""
from __future__ import annotations

import json

from quart import Blueprint, request

from jobs.events import Event, Resync
from webapp import fanout, sse
from webapp.auth import owner_scope

bp = Blueprint("events", __name__)


@bp.get("/api/events")
async def events():
    last_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    view = _JsonView(owner_scope(), fanout.batches())
    return await fanout.serve(view, first=b"retry: 2000\n\n", last_id=last_id)


class _JsonView:
    """Each event as JSON, in full: automation wants every change, not just the latest. An
    author's streams carry their own tasks only."""

    def __init__(self, scope: str | None, batches: fanout.Batches) -> None:
        self.scope, self.batches = scope, batches

    def now(self, items: list, key: tuple | None) -> tuple[bytes, bytes]:
        shared = key and ("json", *key, self.scope)
        return self.batches.get(shared, lambda: self._render(items)), b""

    async def later(self, items: list) -> tuple[bytes, bytes]:
        return self.now(items, None)

    def _render(self, items: list) -> bytes:
        scope, parts = self.scope, []
        for item in items:
            if isinstance(item, Event):
                if scope is None or item.owner == scope:
                    parts.append(sse.event_message(item))
            elif isinstance(item, Resync):
                data = json.dumps({"reason": item.reason, "action": "reload your state"},
                                  separators=(",", ":"))
                parts.append(sse.message(data, event="resync", event_id=item.id))
        return b"".join(parts)
