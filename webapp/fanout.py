"""Live streams to many clients from one web process.

Every stream follows the event bus with a cursor into one shared log (jobs.events); what it
sends is a pure function of the slice of that log it took and of its audience (everyone, or
one author). Clients woken by the same delivery take the same slice, so the bytes are made
once per audience and shared (`Batches`), and whatever is pending for a client leaves in one
send. Views decide what a slice becomes: JSON events for automation, or each changed board
row in its latest state (a slow client's work is bounded by the rows that changed, not by
the events published).

Open streams are capped per user and in total (`StreamLimits`), below what the process's
open-file limit allows, so that a flood of streams cannot take the API down with it.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import resource
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from quart import current_app

from jobs.events import Cursor, Event, EventBus, Resync, parse_id
from webapp import sse
from webapp.auth import current
from webapp.errors import ApiError, error_response

log = logging.getLogger("webapp.fanout")

ID_ONLY_EVERY = 1.0  # seconds; how often a stream moves a browser past events it does not show
OPEN_FILE_RESERVE = 256  # descriptors kept for the API, sign-in, health, database and Redis
RETRY_AFTER = 5          # seconds a refused client is told to wait
SWEEP_SLICE = 128        # streams written per turn of the event loop in a pump pass
SERVING_SLICE = 16       # the same while requests come (one began within REQUESTS_RECENT)
# Requests go first: between slices a pass waits while a request that began within
# GIVE_WAY_FOR seconds is being answered (looking every GIVE_WAY_POLL), for at most MAX_GAP
# in all. A request then waits for one short slice of writes at most, not for a whole pass
# at each of its turns on the loop; a long request (an export) holds passes back only briefly.
GIVE_WAY_FOR = 0.1
GIVE_WAY_POLL = 0.002
# The pump's time writing is budgeted: it earns PUMP_SHARE of the time that passes, saves up
# to PUMP_BURST seconds, and a pass that finds the budget spent waits until it is earned
# back (at most MAX_GAP), while what arrives meanwhile joins that pass. Writing to every
# socket is most of a pass's cost and the same for one event or ten: under a steady flow
# the process sends fewer, larger writes and keeps the rest of its time for requests; after
# a quiet spell events and bursts leave at once. The budget binds only while the process
# answers other requests (one began within REQUESTS_RECENT seconds): with none to make room
# for, passes follow each other as events come.
PUMP_SHARE = 0.2
REQUESTS_RECENT = 1.0
PUMP_BURST = 0.05
MAX_GAP = 0.05


class View(Protocol):
    """What a stream makes of a slice of the log: (messages the client displays, an id-only
    message that moves it past events it does not show)."""

    def now(self, items: list, key: tuple | None) -> tuple[bytes, bytes] | None:
        """At once, or None when the slice needs I/O (`later`). `key` names the slice when
        its rendering may be shared with other clients of the same audience."""

    async def later(self, items: list) -> tuple[bytes, bytes]:
        """Any slice, with whatever I/O it needs (a re-rendered page after a Resync)."""


class Batches:
    """Renderings of log slices, by (slice, audience): made by the first client that takes a
    slice, reused by every other client that takes the same one."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: collections.OrderedDict[tuple, object] = collections.OrderedDict()

    def get(self, key: tuple | None, make: Callable[[], object]):
        if key is None:
            return make()
        try:
            return self._entries[key]
        except KeyError:
            value = self._entries[key] = make()
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
            return value


class _Follower:
    """One open stream: its cursor, its view, and what the pump needs to write for it."""

    __slots__ = ("cursor", "view", "seen", "last_shown", "socket", "busy", "held", "wake",
                 "ended")

    def __init__(self, cursor: Cursor, view: View) -> None:
        self.cursor, self.view = cursor, view
        self.seen: tuple[int, int] | None = None  # the replay's end, until live events pass it
        self.last_shown = time.monotonic()
        self.socket: sse.DirectSocket | None = None
        self.busy = False        # its own task is writing (I/O to render, or a slow client)
        self.held: list | None = None
        self.wake = asyncio.Event()
        self.ended = False

    async def replay(self, bus: EventBus, last_id: str) -> bytes:
        replay = await bus.replay_after(last_id)
        if isinstance(replay, Resync):
            return self.message(*await self.view.later([replay]))
        self.seen = replay[-1].position if replay else parse_id(last_id)[1]
        return self.message(*await self.view.later(replay))

    def take(self) -> tuple[list, tuple | None] | None:
        """The pending slice and its sharing key; None when this stream fell further behind
        than the hub keeps (it ends; the client reconnects and replays)."""
        taken = self.cursor.take()
        if taken is None:
            return None
        start, items = taken
        if self.seen is None:
            return items, (start, start + len(items))
        seen = self.seen  # just after a replay: skip what it already sent
        items = [i for i in items if not isinstance(i, Event) or i.position > seen]
        if any(isinstance(i, Event) for i in items):
            self.seen = None  # past the replay: the rest is new
        return items, None

    def message(self, shown: bytes, marker: bytes) -> bytes:
        """What to send now: id-only markers alone at most every ID_ONLY_EVERY seconds."""
        now = time.monotonic()
        if shown:
            self.last_shown = now
            return shown + marker
        if marker and now - self.last_shown >= ID_ONLY_EVERY:
            self.last_shown = now
            return marker
        return b""


class Pump:
    """Writes every directly served stream's pending events in one pass per delivery.

    No task wakes per client: the pass takes each stream's slice (rendered once per audience
    and shared), writes it to the socket, and moves on. A stream whose slice needs I/O, or
    whose client reads slower than we write, is handed to its own task until it catches up.
    """

    def __init__(self, bus: EventBus, keepalive: float) -> None:
        self.bus, self.keepalive = bus, keepalive
        self.followers: set[_Follower] = set()
        self._task: asyncio.Task | None = None

    async def serve(self, follower: _Follower, socket: sse.DirectSocket) -> None:
        """Serve `follower` until shutdown, its client goes, or it falls too far behind."""
        follower.socket = socket
        self.followers.add(follower)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="stream-pump")
        try:
            self._write_pending(follower)
            while not (follower.ended or self.bus.closing):
                await follower.wake.wait()
                follower.wake.clear()
                while follower.busy and not (follower.ended or self.bus.closing):
                    if follower.held is not None:
                        items, follower.held = follower.held, None
                        socket.write(follower.message(*await follower.view.later(items)))
                    await socket.drain()
                    follower.busy = False
                    self._write_pending(follower)  # what came meanwhile
        finally:
            self.followers.discard(follower)

    async def _run(self) -> None:
        try:
            await self._pass_deliveries()
        except Exception:
            # Every stream it served would stall: end them (clients reconnect and replay).
            log.exception("the stream pump failed; ending its streams")
            for follower in self.followers:
                follower.ended = True
                follower.wake.set()
            raise

    async def _pass_deliveries(self) -> None:
        with self.bus.follow(counted=False) as cursor:
            quiet_since = earned = time.monotonic()
            budget = PUMP_BURST
            while self.followers and not cursor.closed:
                if await cursor.wait(min(self.keepalive, 1.0)):
                    now = time.monotonic()
                    budget, earned = min(PUMP_BURST, budget + (now - earned) * PUMP_SHARE), now
                    if budget < 0 and _requests_coming(now):
                        # spent while requests come: wait for it (see PUMP_SHARE)
                        await asyncio.sleep(min(-budget / PUMP_SHARE, MAX_GAP))
                        now = time.monotonic()
                        budget, earned = budget + (now - earned) * PUMP_SHARE, now
                    cursor.skip()  # the pump only waits on it; each stream has its own
                    # A debt beyond one wait's earnings is forgiven: after a spell of slow
                    # passes (a starved process) events wait at most MAX_GAP, not until
                    # the whole spell is earned back.
                    budget = max(budget - await self._pass(list(self.followers)),
                                 -MAX_GAP * PUMP_SHARE)
                now = time.monotonic()
                if now - quiet_since >= self.keepalive:
                    quiet_since = now
                    for follower in self.followers:
                        if follower.socket.idle_for(now) >= self.keepalive:
                            follower.socket.write(sse.KEEPALIVE)
            for follower in self.followers:
                follower.wake.set()  # shutdown: every stream ends

    async def _pass(self, followers: list[_Follower]) -> float:
        """Write every stream's pending slice, giving way to requests between slices (see
        GIVE_WAY_FOR); the seconds spent writing (not yielding or giving way)."""
        now = time.monotonic()
        deadline = now + MAX_GAP
        step = SERVING_SLICE if _requests_coming(now) else SWEEP_SLICE
        writing = 0.0
        for start in range(0, len(followers), step):
            if start:
                await asyncio.sleep(0)  # let requests in
            await _give_way(deadline)
            began = time.perf_counter()
            for follower in followers[start:start + step]:
                if not follower.busy and not follower.ended:
                    self._write_pending(follower)
            writing += time.perf_counter() - began
        return writing

    def _write_pending(self, follower: _Follower) -> None:
        taken = follower.take()
        if taken is None:
            follower.ended = True
            follower.wake.set()
            return
        items, key = taken
        if not items:
            return
        batch = follower.view.now(items, key)
        if batch is None:
            follower.held, follower.busy = items, True
            follower.wake.set()
            return
        socket = follower.socket
        socket.write(follower.message(*batch))
        if socket.backed_up:
            follower.busy = True
            follower.wake.set()


def _requests_coming(now: float) -> bool:
    """Whether a request other than a stream began within REQUESTS_RECENT of `now`."""
    return now - sse.requests.last < REQUESTS_RECENT


async def _give_way(deadline: float) -> None:
    """Wait while a request that began within GIVE_WAY_FOR is being answered, until
    `deadline` (monotonic) at the latest."""
    requests = sse.requests
    while requests.active and time.monotonic() < min(deadline, requests.last + GIVE_WAY_FOR):
        await asyncio.sleep(GIVE_WAY_POLL)


async def follow(bus: EventBus, view: View, pump: Pump, *, last_id: str | None,
                 keepalive: float, first: bytes) -> AsyncIterator[bytes]:
    """A stream's body: `first`, the replay after `last_id`, then everything pending at each
    delivery in one chunk, until the bus closes (at shutdown) or the client falls so far
    behind that it must reconnect and replay. Streams written straight to their socket are
    served by the pump; the others (another server, the test client) by this generator."""
    with bus.follow() as cursor:  # before the replay, so nothing published meanwhile is lost
        yield first
        follower = _Follower(cursor, view)
        if last_id:
            chunk = await follower.replay(bus, last_id)
            if chunk:
                yield chunk
        socket = sse.direct_socket()
        if socket is not None:
            await pump.serve(follower, socket)
            return
        while not cursor.closed:
            if not await cursor.wait(keepalive):
                yield sse.KEEPALIVE
                continue
            taken = follower.take()
            if taken is None or cursor.closed:
                return
            items, key = taken
            batch = view.now(items, key) or await view.later(items)
            chunk = follower.message(*batch)
            if chunk:
                yield chunk


class StreamLimits:
    """Caps on open streams: per user (429) and for the process (503), each with Retry-After.

    The process cap also stays below the open-file limit minus a reserve, so that requests
    other than streams always find a descriptor. A refusal is logged once per condition (a
    user at their cap, the process at its cap) until that condition clears.
    """

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self.open = 0
        self._by_user: collections.Counter[str] = collections.Counter()
        self._reported: set[str] = set()

    def fit_open_files(self) -> None:
        """Raise the soft open-file limit to the hard one; cap streams below it."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 1 << 20)
        if soft < hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
            except (ValueError, OSError) as exc:
                log.warning("could not raise the open-file limit from %d to %d: %s",
                            soft, hard, exc)
        budget = max(soft - OPEN_FILE_RESERVE, soft // 2)
        if budget < self.total:
            log.warning("open streams capped at %d by the open-file limit (%d, %d kept for "
                        "other requests); STREAM_LIMIT is %d", budget, soft, soft - budget,
                        self.total)
            self.total = budget

    def acquire(self, user: str) -> "Slot":
        if self.open >= self.total:
            self._report("process", "open streams at the process cap (%d): refusing more",
                         self.total)
            raise ApiError(503, "too_many_streams",
                           f"the server has {self.total} event streams open; retry in a few "
                           "seconds", retry_after=RETRY_AFTER)
        if self._by_user[user] >= self.per_user:
            self._report(f"user:{user}", "%s has %d streams open (the per-user cap): refusing "
                         "more", user, self.per_user)
            raise ApiError(429, "too_many_streams",
                           f"you have {self.per_user} event streams open; close one or retry "
                           "in a few seconds", retry_after=RETRY_AFTER)
        self.open += 1
        self._by_user[user] += 1
        return Slot(self, user)

    def _release(self, user: str) -> None:
        self.open -= 1
        self._by_user[user] -= 1
        if not self._by_user[user]:
            del self._by_user[user]
        self._reported.discard(f"user:{user}")
        if self.open < self.total:
            self._reported.discard("process")

    def _report(self, condition: str, message: str, *args) -> None:
        if condition not in self._reported:
            self._reported.add(condition)
            log.warning(message, *args)


class Slot:
    """One open stream's place; released once, when its body ends or is dropped unstarted."""

    def __init__(self, limits: StreamLimits, user: str) -> None:
        self._limits, self._user, self._held = limits, user, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limits._release(self._user)

    def holding(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`body`, releasing the slot when it ends, or when it is collected without having
        started (a client that left before the first byte)."""
        async def guarded() -> AsyncIterator[bytes]:
            try:
                async for chunk in body:
                    yield chunk
            finally:
                self.release()
        stream = guarded()
        weakref.finalize(stream, self.release)
        return stream


def is_stream_path(path: str) -> bool:
    return path == "/api/events" or path.endswith("/stream")


class Streams:
    """The stream machinery of one app: its caps, its shared renderings and its pump."""

    def __init__(self, bus: EventBus, settings) -> None:
        self.limits = StreamLimits(settings.stream_limit_per_user, settings.stream_limit)
        self.batches = Batches()
        self.pump = Pump(bus, settings.sse_keepalive)


def batches() -> Batches:
    return current_app.extensions["streams"].batches


async def serve(view: View, *, first: bytes, last_id: str | None,
                hold: contextlib.AbstractContextManager | None = None):
    """The streaming response for `view`, or a JSON refusal when the caller is at a cap.
    `hold` is entered for as long as the stream is open."""
    rt, streams = current_app.extensions["runtime"], current_app.extensions["streams"]
    try:
        slot = streams.limits.acquire(current().email)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, **exc.extra)
        response.headers["Retry-After"] = str(exc.extra["retry_after"])
        return response

    async def body() -> AsyncIterator[bytes]:
        with hold or contextlib.nullcontext():
            async for chunk in follow(rt.bus, view, streams.pump, last_id=last_id, first=first,
                                      keepalive=rt.settings.sse_keepalive):
                yield chunk

    return await sse.stream_response(slot.holding(body()))
