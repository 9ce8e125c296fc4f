"""The event bus: every task change, in order, with an id a reconnecting client can resume from.

Ids read `<epoch>:<ms>-<seq>`. The epoch names one life of the log (a Redis that lost its
data, an embedded process that restarted); a client whose id is of another epoch, or older
than the oldest kept entry, is told to resynchronise instead of being handed a gap.

Publishing is synchronous and thread-safe (workers and the web's threads call it);
subscribing is asyncio, one live reader per web process fanning out to its clients.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff

from jobs.outage import REDIS_ERRORS, redis_outage

log = logging.getLogger("jobs.events")

STREAM_KEY = "bma:events"
EPOCH_KEY = "bma:events:epoch"
READ_BLOCK_SECONDS = 5  # how long the live reader's XREAD waits for new entries
READ_COUNT = 500        # entries one XREAD takes at most
# After a read that found fewer, the reader waits this long before the next, so that a
# steady trickle of events is read in batches: an XREAD cost the web about as much as the
# events it carried when each brought one. An event after a quiet spell is read at once.
READ_GATHER = 0.002
# The same wait while no client follows the events (only this process's own consumers, such
# as the metrics, which need every event but not within milliseconds): a web process
# answering queued-task requests read back each creation event by itself, a fifth of its
# CPU per request.
READ_GATHER_UNWATCHED = 0.05
SUBSCRIBER_BACKLOG = 2_000  # a client further behind than this is cut off and replays


@dataclass(frozen=True)
class Event:
    id: str
    data: dict
    raw: bytes | None = field(default=None, compare=False, repr=False)  # data as published

    @property
    def epoch(self) -> str:
        return self.id.partition(":")[0]

    @cached_property
    def position(self) -> tuple[int, int]:
        return parse_id(self.id)[1]

    @cached_property
    def json(self) -> bytes:
        """The data as compact JSON, encoded once per process however many clients read it."""
        return self.raw or json.dumps(self.data, separators=(",", ":")).encode()

    @cached_property
    def owner(self) -> str | None:
        task = self.data.get("task")
        return task.get("owner") if task else None


@dataclass(frozen=True)
class Resync:
    """The client missed events that are no longer kept: it must reload its state."""
    id: str | None
    reason: str


# "<epoch>:<ms>-<seq>" as we write them; ASCII digits only ("²".isdigit() is true, and
# int() takes other scripts' digits), each part within Redis' unsigned 64 bits.
_EVENT_ID = re.compile(r"([A-Za-z0-9_.-]{1,64}):([0-9]{1,20})-([0-9]{1,20})")
_MAX_PART = 2**64 - 1


def parse_id(event_id: str) -> tuple[str, tuple[int, int]] | None:
    """The parts of an event id, or None for anything we did not write (the caller resyncs)."""
    match = _EVENT_ID.fullmatch(event_id)
    if match is None:
        return None
    ms, seq = int(match[2]), int(match[3])
    if ms > _MAX_PART or seq > _MAX_PART:
        return None
    return match[1], (ms, seq)


class _Hub:
    """Local fan-out: one shared log of recent items per web process; each follower keeps
    only a cursor into it. Delivering an event is one append and one wake-up, whatever the
    number of clients, and a client's pending work is a slice of the same list."""

    def __init__(self) -> None:
        self.items: list = []
        self.base = 0             # absolute index of items[0]
        self.changed = asyncio.Event()
        self.followers = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closing = False
        self.last_epoch: str | None = None

    @property
    def end(self) -> int:
        return self.base + len(self.items)

    def deliver(self, item: object) -> None:
        if isinstance(item, Event):
            if self.last_epoch is not None and item.epoch != self.last_epoch:
                # The log restarted under us: what came between is gone.
                self.items.append(Resync(None, "the event log restarted"))
            self.last_epoch = item.epoch
        self.items.append(item)
        if len(self.items) >= 2 * SUBSCRIBER_BACKLOG:
            drop = len(self.items) - SUBSCRIBER_BACKLOG
            del self.items[:drop]
            self.base += drop
        self._wake()

    def close(self) -> None:
        self.closing = True
        self._wake()

    def _wake(self) -> None:
        # One set() wakes every waiting follower; later waiters wait on a fresh Event.
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class Cursor:
    """One follower's position in the hub; it starts at the newest item."""

    __slots__ = ("_hub", "next")

    def __init__(self, hub: _Hub) -> None:
        self._hub = hub
        self.next = hub.end

    @property
    def closed(self) -> bool:
        return self._hub.closing

    async def wait(self, timeout: float | None) -> bool:
        """Wait for new items or shutdown; False when `timeout` seconds passed quietly."""
        hub = self._hub
        if self.next < hub.end or hub.closing:
            return True
        try:
            async with asyncio.timeout(timeout):
                await hub.changed.wait()
        except TimeoutError:
            return False
        return True

    def skip(self) -> None:
        """Move to the newest item without reading what came before."""
        self.next = self._hub.end

    def take(self) -> tuple[int, list] | None:
        """(absolute index of the first, items) since the last take; None when this follower
        fell further behind than the hub keeps, and must replay from the log instead."""
        hub = self._hub
        if self.next < hub.base:
            return None
        start, self.next = self.next, hub.end
        return start, hub.items[start - hub.base:]


class EventBus:
    """Shared behaviour; backends provide publish, replay and the live feed."""

    def __init__(self) -> None:
        self._hub = _Hub()

    # -- publishing (sync, any thread) --
    def publish(self, data: dict) -> str:
        raise NotImplementedError

    def publish_tasks(self, views: list[dict], *, soon: bool = False) -> None:
        """Publish task changes, in order; each view carries its record's `version`.

        `soon`: the caller's next dequeue will carry them (RedisEventBus.outgoing); they
        need not wake the sender, and `nudge` sends them if no dequeue came after all."""
        for view in views:
            self.publish({"kind": "task", "task": view})

    def nudge(self) -> None:
        """Send changes published `soon` that no dequeue has carried within CARRY_WAIT."""

    def send_tasks(self, views: list[dict]) -> None:
        """Publish task changes now; raises if they cannot be delivered (the relay's way)."""
        self.publish_tasks(views)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the changes published so far are delivered."""
        return True

    # -- web side (asyncio) --
    async def start(self) -> None:
        self._hub.loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._hub.close()

    def stop_streams(self) -> None:
        """Make every open stream end, so the server can stop."""
        self._hub.close()

    async def _replay(self, epoch: str, position: tuple[int, int]) -> list[Event] | Resync:
        raise NotImplementedError

    async def head(self) -> str | None:
        raise NotImplementedError

    @property
    def closing(self) -> bool:
        return self._hub.closing

    @property
    def subscriber_count(self) -> int:
        return self._hub.followers

    def post_local(self, item: object) -> None:
        """Hand an item of this process only (not logged, no id) to every follower in order
        with the events: the web's periodic panels travel with the task changes this way."""
        self._hub.deliver(item)

    @contextlib.contextmanager
    def follow(self, *, counted: bool = True) -> Iterator[Cursor]:
        """A cursor at the live end, counted as a subscriber while open (unless it serves
        others). Open it before replaying, so that nothing published meanwhile is missed."""
        self._hub.followers += counted
        try:
            yield Cursor(self._hub)
        finally:
            self._hub.followers -= counted

    async def replay_after(self, last_id: str) -> list[Event] | Resync:
        parsed = parse_id(last_id)
        if parsed is None:
            return Resync(await self.head(), "unrecognised Last-Event-ID")
        return await self._replay(*parsed)

    async def subscribe(self, last_id: str | None = None, *, keepalive: float | None = None,
                        counted: bool = True) -> AsyncIterator[Event | Resync | None]:
        """Yield what came after `last_id` (or from now), then live events, until shutdown.

        With `keepalive`, yields None after that many quiet seconds so a stream can send a
        comment that keeps proxies from closing it. One item at a time: for consumers of
        every event (metrics, tests); client streams take whole batches through `follow`.
        `counted`: as in `follow`; a consumer of this process's own is not a client.
        """
        with self.follow(counted=counted) as cursor:
            seen: tuple[int, int] | None = None
            if last_id:
                replay = await self.replay_after(last_id)
                if isinstance(replay, Resync):
                    yield replay
                else:
                    seen = parse_id(last_id)[1]
                    for event in replay:
                        yield event
                        seen = event.position
            while not cursor.closed:
                if not await cursor.wait(keepalive):
                    yield None
                    continue
                taken = cursor.take()
                if taken is None or cursor.closed:
                    return  # behind: the client reconnects with its last id and replays
                for item in taken[1]:
                    if isinstance(item, Event):
                        if seen is not None and item.position <= seen:
                            continue  # already sent during replay
                        yield item
                    elif isinstance(item, Resync):
                        yield item


class MemoryEventBus(EventBus):
    """Embedded mode: a ring buffer in this process; workers are threads of the same process."""

    def __init__(self, maxlen: int) -> None:
        super().__init__()
        self.epoch = secrets.token_hex(4)
        self._ring: collections.deque[Event] = collections.deque()
        self._maxlen = maxlen
        self._seq = 0
        self._dropped_upto = 0  # seq of the newest entry no longer kept
        self._lock = threading.Lock()

    def publish(self, data: dict) -> str:
        with self._lock:
            self._seq += 1
            event = Event(f"{self.epoch}:0-{self._seq}", data)
            self._ring.append(event)
            if len(self._ring) > self._maxlen:
                self._dropped_upto = parse_id(self._ring.popleft().id)[1][1]
            loop = self._hub.loop
            # Delivery order must match id order: schedule while holding the lock.
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._hub.deliver, event)
        return event.id

    async def _replay(self, epoch: str, position: tuple[int, int]) -> list[Event] | Resync:
        with self._lock:
            if epoch != self.epoch:
                return Resync(self._head_locked(), "the server restarted since this id")
            if position[1] < self._dropped_upto:
                return Resync(self._head_locked(), "this id is older than the kept events")
            if position > parse_id(self._head_locked())[1]:
                return Resync(self._head_locked(), "this id is ahead of the event log")
            return [e for e in self._ring if parse_id(e.id)[1][1] > position[1]]

    def _head_locked(self) -> str:
        return self._ring[-1].id if self._ring else f"{self.epoch}:0-0"

    async def head(self) -> str | None:
        with self._lock:
            return self._head_locked()


_PUBLISH_LUA = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[2], epoch)
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', epoch, 'd', ARGV[1])
return {epoch, id}
"""

# Task changes, in order, in one atomic step: each sent only if newer than the last version
# sent for its task, which it then records (for SENT_TTL seconds: the relay looks back less
# far than that). One call for a whole batch: a call per change cost the sender a command
# to build and Redis a script run each.
# KEYS: stream, epoch, then one sent-version key per change.
# ARGV: epoch if none, maxlen, ttl, then per change: event data, version.
_PUBLISH_TASKS_LUA = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
for i = 3, #KEYS do
  local a = (i - 3) * 2 + 4
  if tonumber(redis.call('GET', KEYS[i]) or '0') < tonumber(ARGV[a + 1]) then
    redis.call('SET', KEYS[i], ARGV[a + 1], 'EX', ARGV[3])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', epoch, 'd', ARGV[a])
  end
end
return #KEYS - 2
"""
SENT_KEY = "bma:sent:"  # + task id: the last version of the task the bus has sent
SENT_TTL = 1800

# New tasks: each creation event sent as above, then the task's message added to the queue
# (a sorted set), in one atomic step. A worker cannot claim a task (and publish version 2)
# before its creation (version 1) is in the log, and the request that queues it waits for
# one round trip instead of for the sender thread.
# KEYS: stream, epoch, queue, then one sent-version key per task.
# ARGV: epoch if none, maxlen, ttl, then per task: event data, version, message, score.
_CREATE_TASKS_LUA = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
for i = 4, #KEYS do
  local a = (i - 4) * 4 + 3
  if tonumber(redis.call('GET', KEYS[i]) or '0') < tonumber(ARGV[a + 2]) then
    redis.call('SET', KEYS[i], ARGV[a + 2], 'EX', ARGV[3])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', epoch, 'd', ARGV[a + 1])
  end
  redis.call('ZADD', KEYS[3], ARGV[a + 4], ARGV[a + 3])
end
return #KEYS - 3
"""


class _Sender:
    """One thread per process that sends task changes in batches, in the order given.

    A worker finishing short tasks hands over a claim and an outcome every fraction of a
    millisecond; one pipelined round trip for all of them costs a fraction of one round trip
    each (the syscalls were most of a publish). Waiting LINGER for company adds that much
    to an event's latency.
    """

    LINGER = 0.002
    # How long changes put without waking the thread (a claim's, see `put(wake=False)`) wait
    # for the worker's next dequeue to carry them before the watchdog's nudge sends them.
    CARRY_WAIT = 0.002

    def __init__(self, send: Callable[[list[dict]], None]) -> None:
        self.pid = os.getpid()
        self._send = send
        self._pending: list[dict] = []
        self._busy = False
        self._failing = False
        self._resting = False  # the pending changes were put without waking the thread
        self._since = 0.0      # when the first of them was
        lock = threading.Lock()
        self._work = threading.Condition(lock)  # the thread waits here for changes to send
        self._idle = threading.Condition(lock)  # flush (and the thread) wait for no send under way
        threading.Thread(target=self._run, name="event-sender", daemon=True).start()

    def put(self, views: list[dict], wake: bool = True) -> None:
        with self._work:
            if wake:
                if not self._pending or self._resting:
                    # Only the first wakes the thread (it then takes all that came
                    # meanwhile): a wake-up per change cost as much CPU as the send.
                    self._resting = False
                    self._work.notify()
            elif not self._pending:
                # A worker's claim: its dequeue, in a moment, carries them. Waking the
                # thread for each (to find them gone) cost as much as the rest of the send.
                self._resting, self._since = True, time.monotonic()
            self._pending.extend(views)

    def nudge(self) -> None:
        """Wake the thread for changes put without waking it that have waited CARRY_WAIT (a
        worker whose task runs long): called by the worker's watchdog every tick."""
        if not self._resting:  # unlocked look: nothing to do is the usual case
            return
        with self._work:
            if self._resting and time.monotonic() - self._since >= self.CARRY_WAIT:
                self._resting = False
                self._work.notify()

    def flush(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending and not self._busy, timeout)

    def take(self) -> list[dict] | None:
        """The pending changes, for a caller that sends them in a round trip of its own (see
        RedisEventBus.outgoing); it must then call `done`. None when nothing is pending, or
        a send is under way: one at a time keeps the changes in order."""
        with self._work:
            if self._busy or not self._pending:
                return None
            batch, self._pending, self._busy, self._resting = self._pending, [], True, False
            return batch

    def done(self, batch: list[dict], failed: BaseException | None) -> None:
        """A batch from `take` was answered; if it failed, this thread sends it, first.
        Sending one twice is harmless: Redis drops a version it has already sent."""
        with self._work:
            if failed is not None:
                if not self._pending:
                    self._work.notify()
                self._pending[:0] = batch
            self._busy = False
            self._idle.notify_all()  # no system call when nobody waits

    def _run(self) -> None:
        while True:
            with self._work:
                self._work.wait_for(lambda: self._pending)
            time.sleep(self.LINGER)  # let the changes that follow join this round trip
            with self._idle:
                self._idle.wait_for(lambda: not self._busy)  # a worker's dequeue sending some
                if not self._pending:
                    continue  # it took them all
                batch, self._pending, self._busy, self._resting = self._pending, [], True, False
            try:
                self._send(batch)
            except Exception as exc:  # noqa: BLE001 - the relay sends these later
                if not self._failing:
                    self._failing = True
                    log.warning("task events are not reaching Redis (%s); they will be sent "
                                "when it is back", exc)
            else:
                if self._failing:
                    self._failing = False
                    log.info("task events reach Redis again")
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()


class RedisEventBus(EventBus):
    """Redis mode: a bounded Redis Stream; each web process runs one blocking reader."""

    def __init__(self, url: str, maxlen: int) -> None:
        super().__init__()
        self._url = url
        self._maxlen = maxlen
        self._sync = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._publish_script = self._sync.register_script(_PUBLISH_LUA)
        self._tasks_sha = hashlib.sha1(_PUBLISH_TASKS_LUA.encode()).hexdigest()
        self._create_sha = hashlib.sha1(_CREATE_TASKS_LUA.encode()).hexdigest()
        self._async: aioredis.Redis | None = None
        self._reader: asyncio.Task | None = None
        self._sender: _Sender | None = None
        self._sender_lock = threading.Lock()
        self.reader_problem: str | None = None  # why live events are not flowing, for health

    def publish(self, data: dict) -> str:
        epoch, entry_id = self._publish_script(
            keys=[STREAM_KEY, EPOCH_KEY],
            args=[json.dumps(data, separators=(",", ":")), secrets.token_hex(4), self._maxlen],
        )
        return f"{epoch.decode()}:{entry_id.decode()}"

    def publish_tasks(self, views: list[dict], *, soon: bool = False) -> None:
        """Hand task changes to this process's sender thread, which sends what gathers
        within LINGER seconds in one round trip (or to the worker's next dequeue, see
        `outgoing`). Never blocks on Redis and never raises: a change the sender cannot
        deliver is sent later by the relay (jobs/relay.py)."""
        sender = self._sender
        if sender is None or sender.pid != os.getpid():  # first use, or a forked worker
            with self._sender_lock:
                if self._sender is None or self._sender.pid != os.getpid():
                    self._sender = _Sender(self.send_tasks)
            sender = self._sender
        sender.put(views, wake=not soon)

    def nudge(self) -> None:
        sender = self._sender
        if sender is not None and sender.pid == os.getpid():
            sender.nudge()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every change handed over so far was sent (or given up on)."""
        sender = self._sender
        return sender is None or sender.pid != os.getpid() or sender.flush(timeout)

    def send_tasks(self, views: list[dict]) -> None:
        """Send task changes now, in one round trip; raises if Redis does not take them."""
        if not views:
            return
        command = self._tasks_command(views)
        try:
            self._sync.execute_command(*command)
        except redis.exceptions.NoScriptError:  # Redis restarted since we loaded it
            self._tasks_sha = self._sync.script_load(_PUBLISH_TASKS_LUA)
            self._sync.execute_command(*self._tasks_command(views))

    def outgoing(self) -> tuple[tuple, Callable[[BaseException | None], None]] | None:
        """This process's task changes waiting for the sender thread, for a caller that
        sends them with a command of its own: a worker's dequeue, so that a worker running
        short tasks makes one round trip per task instead of two, and its sender thread
        stays asleep. Returns the command (one EVALSHA) and what to call with its answer:
        None once sent, or the error, and the sender thread then sends them. None when
        nothing is waiting, or a send is under way."""
        sender = self._sender
        if sender is None or sender.pid != os.getpid():
            return None
        batch = sender.take()
        if batch is None:
            return None
        return self._tasks_command(batch), lambda failed: sender.done(batch, failed)

    def _tasks_command(self, views: list[dict]) -> tuple:
        keys = [STREAM_KEY, EPOCH_KEY] + [SENT_KEY + view["task_id"] for view in views]
        args: list = [secrets.token_hex(4), self._maxlen, SENT_TTL]
        for view in views:
            args += [json.dumps({"kind": "task", "task": view}, separators=(",", ":")),
                     view["version"]]
        return ("EVALSHA", self._tasks_sha, len(keys), *keys, *args)

    def send_created(self, views: list[dict], conn: redis.Redis, queue_key: str,
                     messages: list[tuple[bytes, float]]) -> None:
        """Send the creation events of new tasks and add their messages (member, score) to
        the sorted set `queue_key`, in one atomic step on `conn` (the queue's connection,
        with its short timeouts); raises, having done nothing, if Redis does not take it."""
        keys = [STREAM_KEY, EPOCH_KEY, queue_key] + [SENT_KEY + v["task_id"] for v in views]
        args: list = [secrets.token_hex(4), self._maxlen, SENT_TTL]
        for view, (member, score) in zip(views, messages, strict=True):
            args += [json.dumps({"kind": "task", "task": view}, separators=(",", ":")),
                     view["version"], member, score]
        try:
            conn.evalsha(self._create_sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # Redis restarted since we loaded it
            self._create_sha = conn.script_load(_CREATE_TASKS_LUA)
            conn.evalsha(self._create_sha, len(keys), *keys, *args)

    def sent_versions(self, task_ids: list[str]) -> list[int]:
        """The last version sent for each task (0: none, or forgotten after SENT_TTL)."""
        if not task_ids:
            return []
        return [int(v or 0) for v in self._sync.mget([SENT_KEY + t for t in task_ids])]

    async def start(self) -> None:
        await super().start()
        # A retry on a stale connection makes the first replay after an outage work. redis-py
        # reads with a 5 s socket timeout by default: a blocking XREAD must be allowed
        # longer, or a quiet stream looks like a lost Redis and the reader backs off.
        self._async = aioredis.Redis.from_url(
            self._url, socket_connect_timeout=1, socket_timeout=READ_BLOCK_SECONDS + 5,
            retry=AsyncRetry(ExponentialBackoff(cap=0.2, base=0.02), 2),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        self._reader = asyncio.create_task(self._read_forever(), name="event-reader")

    async def close(self) -> None:
        await super().close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
        if self._async is not None:
            await self._async.aclose()
        await asyncio.to_thread(self.flush, 2.0)
        self._sync.close()

    async def _read_forever(self) -> None:
        """Feed the hub from the stream, forever: any failure is logged once, retried with
        backoff and shown by health (`reader_problem`); when reading works again every
        client is told to resynchronise, since what happened meanwhile may be missing."""
        position = "$"
        backoff = 0.1
        lost_redis = False
        while True:
            try:
                reply = await self._async.xread({STREAM_KEY: position},
                                                block=READ_BLOCK_SECONDS * 1000,
                                                count=READ_COUNT)
                taken = 0
                for _stream, entries in reply or ():
                    taken += len(entries)
                    for entry_id, fields in entries:
                        position = entry_id
                        self._hub.deliver(_entry_to_event(entry_id, fields))
                if 0 < taken < READ_COUNT:
                    await asyncio.sleep(READ_GATHER if self._hub.followers else READ_GATHER_UNWATCHED)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.reader_problem is None:
                    self.reader_problem = f"{type(exc).__name__}: {exc}"
                    lost_redis = isinstance(exc, REDIS_ERRORS)
                    if lost_redis:
                        redis_outage.failed(exc)  # the one line for the whole outage
                    else:
                        log.exception("event reader failed; restarting it with backoff")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)  # back within 2 s of Redis answering
                continue
            backoff = 0.1
            if self.reader_problem is not None:
                if lost_redis:
                    redis_outage.succeeded()
                else:
                    log.warning("event reader running again after: %s", self.reader_problem)
                self.reader_problem = None
                self._hub.deliver(Resync(None, "live updates were interrupted"))

    async def _replay(self, epoch: str, position: tuple[int, int]) -> list[Event] | Resync:
        try:
            return await self._replay_from_redis(epoch, position)
        except REDIS_ERRORS as exc:
            # The stream stays open on keep-alives; the page reloads its state from the
            # database, which is current, instead of waiting on a log it cannot read.
            redis_outage.failed(exc)
            return Resync(None, "the event log is unreachable; reload your state")

    async def _replay_from_redis(self, epoch: str, position: tuple[int, int]) -> list[Event] | Resync:
        current = await self._async.get(EPOCH_KEY)
        if current is None or current.decode() != epoch:
            return Resync(await self.head(), "the event log restarted since this id")
        try:
            info = await self._async.xinfo_stream(STREAM_KEY)
        except redis.ResponseError:
            return Resync(await self.head(), "the event log is empty")
        dropped = info.get("max-deleted-entry-id")
        if dropped is not None and position < _position(dropped):
            return Resync(await self.head(), "this id is older than the kept events")
        if position > _position(info["last-generated-id"]):
            return Resync(await self.head(), "this id is ahead of the event log")
        start = f"({position[0]}-{position[1]}"
        entries = await self._async.xrange(STREAM_KEY, min=start, max="+")
        return [_entry_to_event(entry_id, fields) for entry_id, fields in entries]

    async def head(self) -> str | None:
        """The newest event's id; None when the log is empty or unreachable."""
        try:
            last = await self._async.xrevrange(STREAM_KEY, count=1)
        except REDIS_ERRORS as exc:
            redis_outage.failed(exc)
            return None
        return _entry_to_event(*last[0]).id if last else None


def _position(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def _entry_to_event(entry_id: bytes, fields: dict) -> Event:
    raw = fields[b"d"]
    return Event(f"{fields[b'e'].decode()}:{entry_id.decode()}", json.loads(raw), raw)
