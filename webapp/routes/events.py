"""`GET /api/events`: every task change as server-sent events, resumable with Last-Event-ID."""
from __future__ import annotations

import json

from quart import Blueprint, request

from jobs.events import Event, Resync
from webapp import fanout, sse
from webapp.auth import owner_scope
from webapp.role_views import AuthorView, author_view

bp = Blueprint("events", __name__)


@bp.get("/api/events")
async def events():
    last_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    view = _JsonView(owner_scope(), author_view(), fanout.batches())
    return await fanout.serve(view, first=b"retry: 2000\n\n", last_id=last_id)


class _JsonView:
    """Each event as JSON, in full: automation wants every change, not just the latest. An
    author's streams carry their own tasks only, as role_views shows them to authors."""

    def __init__(self, scope: str | None, author: AuthorView | None,
                 batches: fanout.Batches) -> None:
        self.scope, self.author, self.batches = scope, author, batches

    def now(self, items: list, key: tuple | None) -> tuple[bytes, bytes]:
        shared = key and ("json", *key, self.scope)
        return self.batches.get(shared, lambda: self._render(items)), b""

    async def later(self, items: list) -> tuple[bytes, bytes]:
        return self.now(items, None)

    def _render(self, items: list) -> bytes:
        scope, author, parts = self.scope, self.author, []
        for item in items:
            if isinstance(item, Event):
                if scope is None:
                    parts.append(sse.event_message(item))
                elif item.owner == scope:
                    shown = json.dumps(author.event(item.data), separators=(",", ":"))
                    parts.append(sse.event_message(item, shown.encode()))
            elif isinstance(item, Resync):
                data = json.dumps({"reason": item.reason, "action": "reload your state"},
                                  separators=(",", ":"))
                parts.append(sse.message(data, event="resync", event_id=item.id))
        return b"".join(parts)
