"""The dashboard's event streams: one per page, HTML for htmx's SSE extension.

`/board/stream` carries task rows and the health panels, `/tasks/<id>/stream` one task's
live section, `/health/stream` the health panels. Each resumes from Last-Event-ID (the
extension resends it when it reconnects) or from `after`, the position of the log when
the page was rendered, so nothing that happened in between is lost. A browser whose
position is no longer kept receives the page's live part re-rendered instead.

Every stream follows the event bus, so it ends when the bus closes its subscriptions at
shutdown and the server can stop.
"""
from __future__ import annotations

import asyncio

from quart import Blueprint, current_app, request

from jobs.events import Event, Resync
from webapp import fanout, runtime
from webapp.auth import can_see, owner_scope
from webapp.board_feed import LiveFeed, Panels
from webapp.board_queries import BoardFilters
from webapp.role_views import AuthorView, author_view
from webapp.sse import id_only

bp = Blueprint("board", __name__)


@bp.record_once
def _install(state) -> None:
    state.app.extensions["live_feed"] = LiveFeed(state.app)


@bp.after_app_serving
async def _stop_ticker() -> None:
    current_app.extensions["live_feed"].ticker.stop()


def live_feed() -> LiveFeed:
    return current_app.extensions["live_feed"]


def _resume_from() -> str | None:
    return request.headers.get("Last-Event-ID") or request.args.get("after") or None


def _health_variant() -> str:
    """Authors see the health of the service, not which other people's tasks are running."""
    return "limited" if owner_scope() is not None else "full"


def _split_at_resync(items: list) -> tuple[Resync | None, list]:
    """The last Resync of a slice and what came after it: the page's live part re-rendered
    for the Resync supersedes everything before it."""
    for i in range(len(items) - 1, -1, -1):
        if isinstance(items[i], Resync):
            return items[i], items[i + 1:]
    return None, items


def _last_hidden(items: list, shown: Event | None) -> bytes:
    """An id-only message for the newest event not shown, when it is newer than `shown`."""
    for item in reversed(items):
        if isinstance(item, Event):
            return b"" if item is shown else id_only(item.id)
    return b""


def _panels(items: list, variant: str | None) -> bytes:
    """The newest panels of the slice, in `variant` (None: a page without them)."""
    for item in reversed(items if variant else ()):
        if isinstance(item, Panels):
            return item.messages[variant]
    return b""


class _BoardView:
    """Each changed row in its latest state, in the order of those states, and the newest
    panels: a client that fell behind gets one message per row changed, not per event."""

    def __init__(self, feed: LiveFeed, filters: BoardFilters, scope: str | None,
                 with_health: bool) -> None:
        self.feed, self.filters, self.scope = feed, filters, scope
        self.batches = fanout.batches()
        self.variant = ("limited" if scope is not None else "full") if with_health else None

    def now(self, items: list, key: tuple | None) -> tuple[bytes, bytes] | None:
        if any(isinstance(item, Resync) for item in items):
            return None  # the board is re-rendered from the database
        shared = key and ("board", *key, self.scope, self.variant)
        return self.batches.get(shared, lambda: self._rows(items))

    async def later(self, items: list) -> tuple[bytes, bytes]:
        resync, items = _split_at_resync(items)
        sections = (await self.feed.board_sections(self.filters, resync.id, scope=self.scope)
                    if resync is not None else b"")
        shown, marker = self._rows(items)
        return sections + shown, marker

    def _rows(self, items: list) -> tuple[bytes, bytes]:
        scope, latest = self.scope, {}
        for item in items:
            if isinstance(item, Event):
                task = item.data.get("task")
                if scope is not None and (not task or task.get("owner") != scope):
                    continue  # another author's task: never sent
                row = task.get("task_id") if task else item.id
                latest.pop(row, None)  # re-inserted: the dict keeps the order of latest states
                latest[row] = item
        rows = self.feed.rows
        shown = b"".join(rows.get(event) for event in latest.values())
        newest = next(reversed(latest.values()), None)
        return shown + _panels(items, self.variant), _last_hidden(items, newest)


class _TaskView:
    """One task's live section, re-rendered (once per process and audience) when the task
    changes."""

    def __init__(self, feed: LiveFeed, task_id: str, author: AuthorView | None) -> None:
        self.feed, self.task_id, self.author = feed, task_id, author

    def now(self, items: list, key: tuple | None) -> tuple[bytes, bytes] | None:
        if any(isinstance(item, Resync) for item in items) or self._latest(items):
            return None  # the section is re-rendered from the database
        return b"", _last_hidden(items, None)

    async def later(self, items: list) -> tuple[bytes, bytes]:
        resync, items = _split_at_resync(items)
        shown = (await self.feed.task_section(self.task_id, resync.id, self.author)
                 if resync else b"")
        latest = self._latest(items)
        if latest is not None:
            shown += await self.feed.task_event(self.task_id, latest, self.author)
        return shown, _last_hidden(items, latest)

    def _latest(self, items: list) -> Event | None:
        for item in reversed(items):
            if isinstance(item, Event) and (item.data.get("task") or {}).get("task_id") \
                    == self.task_id:
                return item
        return None


class _HealthView:
    """The panels only; task changes are not shown here."""

    def __init__(self, variant: str) -> None:
        self.variant = variant

    def now(self, items: list, key: tuple | None) -> tuple[bytes, bytes]:
        return _panels(items, self.variant), _last_hidden(items, None)

    async def later(self, items: list) -> tuple[bytes, bytes]:
        return self.now(items, None)


@bp.get("/board/stream")
async def board_stream():
    feed = live_feed()
    scope = owner_scope()  # decided now: the stream outlives the request's context
    filters = BoardFilters.from_args(request.args).within(scope)
    # `health=0`: a page showing rows only (an author's running work on their home).
    with_health = request.args.get("health") != "0"
    return await fanout.serve(_BoardView(feed, filters, scope, with_health),
                              first=b": connected\n\n", last_id=_resume_from(),
                              hold=feed.ticker.listening() if with_health else None)


@bp.get("/tasks/<task_id>/stream")
async def task_stream(task_id: str):
    feed = live_feed()
    record = await asyncio.to_thread(runtime().tracker.get, task_id)
    if record is None or not can_see(record["owner"]):
        return "no such task", 404
    return await fanout.serve(_TaskView(feed, task_id, author_view()), first=b": connected\n\n",
                              last_id=_resume_from())


@bp.get("/health/stream")
async def health_stream():
    return await fanout.serve(_HealthView(_health_variant()), first=b": connected\n\n",
                              last_id=_resume_from(), hold=live_feed().ticker.listening())
