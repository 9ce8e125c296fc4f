"""What the dashboard's event streams send, rendered once per event per process.

Every open board receives the same message for a task change: the task's row, marked
`hx-swap-oob="taskRow ..."` so that app.js morphs it in place, moves it between the current
and history tables, or inserts it when it is new. Each row is rendered by the first stream
that sends it and kept (by event id) for the others, so 2,000 open boards cost one rendering
per change, and only for changes some board still has to be told (a board that fell behind
gets each row's latest state). The health and autonomous panels are rendered once per
interval by one ticker per process and posted to every stream through the event bus.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from markupsafe import Markup
from quart import Quart

from jobs.events import Event
from jobs.posts import batch_posts
from jobs.task_types import POSTED_TYPES
from webapp import board_queries
from webapp.board_queries import BoardFilters
from webapp.health import health_report
from webapp.role_views import AuthorView
from webapp.sse import id_only, message

log = logging.getLogger("webapp.board")

HEALTH_INTERVAL = 3.0     # seconds between health panel renderings
BACKLOG_WINDOW = 30.0     # a backlog that grew over this long, with old tasks waiting, is flagged
BACKLOG_MIN_AGE = 30.0    # seconds the oldest waiting task must have waited


class RenderCache:
    """Renderings by key, each made once even when many streams ask at the same moment."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: collections.OrderedDict[object, asyncio.Future] = collections.OrderedDict()
        self.renders = 0  # how many renderings were made (the rest were shared)

    async def get(self, key: object, make: Callable[[], Awaitable[bytes]]) -> bytes:
        future = self._entries.get(key)
        if future is None:
            self.renders += 1
            future = asyncio.ensure_future(make())
            self._entries[key] = future
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
            future.add_done_callback(lambda f: self._forget_failed(key, f))
        else:
            self._entries.move_to_end(key)
        # A client that goes away must not cancel a rendering other clients wait for.
        return await asyncio.shield(future)

    def _forget_failed(self, key: object, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            if self._entries.get(key) is future:
                del self._entries[key]


def row_html(env, task: dict, oob: bool = False) -> Markup:
    """One board row, rendered synchronously: a row needs no I/O, and Jinja's asynchronous
    rendering took 5 times as long (1.1 against 0.2 ms a row; a board page draws up to 125)."""
    return Markup(env.get_template("task_row.html").render(task=task, row_oob=oob))


class RowCache:
    """Board rows by event id, rendered synchronously (no stream has to wait on another's
    rendering)."""

    def __init__(self, env, size: int = 4096) -> None:
        self._env = env
        self._size = size
        self._entries: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self.renders = 0

    def get(self, event: Event) -> bytes:
        row = self._entries.get(event.id)
        if row is None:
            self.renders += 1
            task = event.data.get("task")
            if event.data.get("kind") != "task" or not task:
                row = id_only(event.id)
            else:
                row = message(row_html(self._env, task, oob=True), event_id=event.id)
            self._entries[event.id] = row
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return row


@dataclass(frozen=True)
class Panels:
    """One rendering of the health and autonomous panels, per variant, as SSE messages."""
    messages: dict[str, bytes]


class HealthTicker:
    """Renders the health and autonomous panels every HEALTH_INTERVAL while anyone listens.

    Two variants per tick: "full" names the tasks each worker runs; "limited", for authors,
    is the service's state without other people's work or worker internals (role_views).
    """

    VARIANTS = ("full", "limited")

    def __init__(self, feed: "LiveFeed") -> None:
        self._feed = feed
        self._listeners = 0
        self._task: asyncio.Task | None = None
        self._pending_history: collections.deque[tuple[float, int]] = collections.deque()

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """While any stream shows the panels, a rendering is posted every interval."""
        self._listeners += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="health-ticker")
        try:
            yield
        finally:
            self._listeners -= 1

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        bus = self._feed.runtime.bus
        while self._listeners > 0 and not bus.closing:
            started = time.monotonic()
            try:
                messages = await self.render()
            except Exception:
                log.exception("could not render the health panel")
            else:
                bus.post_local(Panels(messages))
            await asyncio.sleep(max(HEALTH_INTERVAL - (time.monotonic() - started), 0.5))

    async def render(self) -> dict[str, bytes]:
        report = self.annotate(await health_report(self._feed.runtime))
        views = {"full": report, "limited": self._feed.author_view.health(report)}
        return {variant: message(await self._feed.render(
                    "_health_panels_oob.html", oob=True, health=views[variant],
                    limited=variant == "limited"))
                for variant in self.VARIANTS}

    def annotate(self, report: dict) -> dict:
        """Add what only a watcher over time can see: a backlog that keeps growing."""
        queue = report["task_queue_status"]
        pending, oldest = queue.get("pending_tasks") or 0, queue.get("oldest_pending_seconds")
        now = time.monotonic()
        history = self._pending_history
        history.append((now, pending))
        while history and now - history[0][0] > 2 * BACKLOG_WINDOW:
            history.popleft()
        earlier = [n for t, n in history if now - t >= BACKLOG_WINDOW]
        growing = bool(earlier) and pending > earlier[-1] and (oldest or 0) >= BACKLOG_MIN_AGE
        if growing:
            report = {**report, "problems": [
                *report["problems"],
                f"backlog growing: {pending} tasks waiting (was {earlier[-1]}), "
                f"the oldest for {oldest:.0f}s"]}
            if report["status"] == "healthy":
                report["status"] = "degraded"
        return report


class LiveFeed:
    """Renders stream messages for the board, task and health pages of one web process."""

    def __init__(self, app: Quart) -> None:
        self.app = app
        # Its own environment for rows: the app's renders asynchronously only. Pages draw
        # their rows with it too (`{{ task|task_row }}`).
        rows_env = app.jinja_env.overlay(enable_async=False, cache_size=50)
        # A row is drawn once for every audience: an error text naming a worker (records
        # from before the worker had a field of its own) shows its alias to all of them.
        rows_env.filters["worker_aliases"] = app.extensions["author_view"].text
        app.jinja_env.filters["task_row"] = functools.partial(row_html, rows_env)
        self.rows = RowCache(rows_env)
        self.pages = RenderCache(128)   # task sections and whole boards: larger, rarer
        self.ticker = HealthTicker(self)

    @property
    def runtime(self):
        return self.app.extensions["runtime"]

    async def render(self, template: str, **context) -> str:
        return await self.app.jinja_env.get_template(template).render_async(**context)

    # -- the board --
    async def board_sections(self, filters: BoardFilters, event_id: str | None, *,
                             scope: str | None = None) -> bytes:
        """The whole board, for browsers that missed events we no longer keep (after a
        restart, all of them at once: those with the same view share one rendering)."""
        async def make() -> bytes:
            data = await asyncio.to_thread(board_queries.board, self.runtime.db, filters)
            html = await self.render("_board_sections.html", board=data, oob=True,
                                     scoped=scope is not None)
            return message(html, event_id=event_id)

        if event_id is None:  # no position to share it by
            return await make()
        return await self.pages.get(("sections", filters, scope, event_id), make)

    @property
    def author_view(self) -> AuthorView:
        return self.app.extensions["author_view"]

    # -- one task's page --
    async def task_event(self, task_id: str, event: Event, author: AuthorView | None) -> bytes:
        return await self.pages.get(("task", event.id, author is not None),
                                    lambda: self.task_section(task_id, event.id, author))

    async def task_section(self, task_id: str, event_id: str | None,
                           author: AuthorView | None) -> bytes:
        """The task page's live section, for its author (`author`) or for everyone else."""
        detail = await asyncio.to_thread(task_detail, self.runtime, task_id)
        if detail is None:
            return id_only(event_id) if event_id else b""
        if author is not None:
            detail = author.detail(detail)
        html = await self.render("_task_live.html", oob=True, **detail)
        return message(html, event_id=event_id)


def task_detail(rt, task_id: str) -> dict | None:
    """Everything the task page shows that can change (blocking)."""
    record = rt.tracker.get(task_id)
    if record is None:
        return None
    posts = batch_posts(rt.db, task_id) if record["type"] in POSTED_TYPES else []
    return {"task": record, "timeline": rt.tracker.timeline(task_id), "posts": posts,
            "retried_as": rt.tracker.retries_of(task_id)}
