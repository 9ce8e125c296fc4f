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
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from quart import Blueprint, current_app, request

from jobs.events import Event, Resync
from webapp import runtime, sse
from webapp.auth import can_see, owner_scope
from webapp.board_feed import LiveFeed
from webapp.board_queries import BoardFilters
from webapp.sse import id_only

bp = Blueprint("board", __name__)

ID_ONLY_EVERY = 1.0  # seconds; how often a stream moves a browser past events it does not show


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


Render = Callable[[Event | Resync], Awaitable[bytes | None]]


def _health_variant() -> str:
    """Authors see the health of the service, not which other people's tasks are running."""
    return "limited" if owner_scope() is not None else "full"


class _Skipper:
    """For events a page does not show: move the browser's Last-Event-ID on now and then, so
    that a reconnect neither replays a long stretch of them nor finds its id too old."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def shown(self) -> None:
        self._last = time.monotonic()

    def skip(self, event: Event) -> bytes | None:
        if time.monotonic() - self._last < ID_ONLY_EVERY:
            return None
        self._last = time.monotonic()
        return id_only(event.id)


async def _stream(render: Render, *, with_health: bool) -> object:
    rt = runtime()
    feed = live_feed()
    items = rt.bus.subscribe(_resume_from(), keepalive=rt.settings.sse_keepalive)
    ticks = feed.ticker.updates(_health_variant()) if with_health else None

    async def body() -> AsyncIterator[bytes]:
        yield b": connected\n\n"
        merged = _merge(items, ticks)
        try:
            async for source, value in merged:
                if source == "tick":
                    yield value
                elif value is None:
                    yield sse.KEEPALIVE
                else:
                    message = await render(value)
                    if message:
                        yield message
        finally:
            await merged.aclose()  # at once, not whenever the generator is collected

    return await sse.stream_response(body())


async def _merge(items: AsyncIterator,
                 ticks: AsyncIterator | None) -> AsyncIterator[tuple[str, object]]:
    """Yield ("item", x) from `items` and ("tick", y) from `ticks` as they come; end when
    `items` ends."""
    next_item = asyncio.ensure_future(anext(items))
    next_tick = asyncio.ensure_future(anext(ticks)) if ticks is not None else None
    try:
        while True:
            waiting = {next_item} if next_tick is None else {next_item, next_tick}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if next_tick in done:
                yield "tick", next_tick.result()
                next_tick = asyncio.ensure_future(anext(ticks))
            if next_item in done:
                try:
                    item = next_item.result()
                except StopAsyncIteration:
                    return
                yield "item", item
                next_item = asyncio.ensure_future(anext(items))
    finally:
        pending = [t for t in (next_item, next_tick) if t is not None and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await items.aclose()
        if ticks is not None:
            await ticks.aclose()


@bp.get("/board/stream")
async def board_stream():
    feed = live_feed()
    scope = owner_scope()  # decided now: the stream outlives the request's context
    filters = BoardFilters.from_args(request.args).within(scope)
    skipper = _Skipper()

    async def render(item: Event | Resync) -> bytes | None:
        if isinstance(item, Resync):
            return await feed.board_sections(filters, item.id, scope=scope)
        task = item.data.get("task") or {}
        if scope is not None and task.get("owner") != scope:
            return skipper.skip(item)  # another author's task: never sent
        skipper.shown()
        return await feed.board_event(item)

    # `health=0`: a page showing rows only (an author's running work on their home).
    return await _stream(render, with_health=request.args.get("health") != "0")


@bp.get("/tasks/<task_id>/stream")
async def task_stream(task_id: str):
    feed = live_feed()
    record = await asyncio.to_thread(runtime().tracker.get, task_id)
    if record is None or not can_see(record["owner"]):
        return "no such task", 404
    skipper = _Skipper()

    async def render(item: Event | Resync) -> bytes | None:
        if isinstance(item, Resync):
            return await feed.task_section(task_id, item.id)
        if (item.data.get("task") or {}).get("task_id") == task_id:
            skipper.shown()
            return await feed.task_event(task_id, item)
        return skipper.skip(item)

    return await _stream(render, with_health=False)


@bp.get("/health/stream")
async def health_stream():
    skipper = _Skipper()

    async def render(item: Event | Resync) -> bytes | None:
        # Only the panels, which come from the ticker; task changes are not shown here.
        return skipper.skip(item) if isinstance(item, Event) else None

    return await _stream(render, with_health=True)
