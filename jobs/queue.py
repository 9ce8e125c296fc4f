"""The Huey instance for the active backend, and the JSON serializer its messages travel in.

Huey pickles by default, so anyone able to write to Redis could run code in the workers.
Here a message is JSON; anything else is refused before it is interpreted.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import redis
from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey
from huey.storage import PriorityRedisStorage
from huey.registry import Message
from huey.serializer import Serializer

from jobs.settings import Settings

log = logging.getLogger("jobs.queue")

QUEUE_NAME = "book-marketing"


class RejectedMessage(ValueError):
    """A queue payload that is not one of our JSON messages."""


def _encode(value: object) -> object:
    if isinstance(value, Message):
        return {"$message": [_encode(v) for v in value]}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot put a {type(value).__name__} on the queue")


def _decode(value: object) -> object:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "$message" in value:
            return Message(*[_decode(v) for v in value["$message"]])
        if "$datetime" in value:
            return dt.datetime.fromisoformat(value["$datetime"])
        return {k: _decode(v) for k, v in value.items()}
    return value


class JSONSerializer(Serializer):
    def _serialize(self, data: object) -> bytes:
        return json.dumps(_encode(data), separators=(",", ":")).encode()

    def _deserialize(self, data: bytes) -> object:
        try:
            decoded = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            log.error("Rejected a queue payload that is not JSON (%d bytes, starts %r); "
                      "it was dropped, not executed", len(data), bytes(data[:16]))
            raise RejectedMessage("queue payload is not JSON") from None
        return _decode(decoded)


class _NoRevokeFlags:
    """Huey's own revocation is not used: a task is revoked in its record, which the worker
    reads when it claims the task (jobs/tracking.py). Huey would still ask Redis for revoke
    flags before every task and delete one after it: two round trips per task for flags
    nobody sets (bench/bench_pipeline.py: a third of the queue's calls)."""

    def is_revoked(self, task, timestamp=None, peek=True) -> bool:
        return False

    def delete(self, key):
        if isinstance(key, str) and key.startswith("r:"):  # Task.revoke_id: never set here
            return False
        return super().delete(key)


class QueueStorage(PriorityRedisStorage):
    """The Redis queue, and a worker's other business with Redis done with its dequeue.

    - Its task events (see RedisEventBus.outgoing) travel in the same round trip. A worker
      running short tasks publishes a claim and an outcome per task; sent by the event
      thread, that was a second round trip per task and a thread wake-up. The events go
      first, and their answer is read (and the batch released to the event thread, so no
      later change overtakes it) before the dequeue's, which may wait for work.
    - Outcomes its process has not yet written (Tracker.carry_outcomes): with a message
      waiting, they go with its claim; with none, they are written at once, before the
      wait for work, instead of after it.
    - Several messages at once, when the worker's plan allows (Executor.batch_plan): the
      first message, and after it those of the task types that run short here, up to the
      plan's count. They wait in the dequeuing thread's own buffer, and the worker claims
      them together (one transaction for several tasks). The first message of another type
      and everything after it go back to the queue with their scores, so the queue's order
      stays as it was. A worker that stops returns its buffer (return_buffered); one that
      is killed leaves records waiting with no message, which the reaper queues again.
    """

    # Set by the runtime. () -> (command, done(error | None)) or None.
    outgoing: Callable[[], tuple | None] | None = None
    # () -> whether outcomes wait to be written, and () -> have them written now.
    outcomes_waiting: Callable[[], bool] | None = None
    write_outcomes: Callable[[], None] | None = None
    # () -> (how many messages one dequeue may take, the task types that may follow the first).
    batch_plan: Callable[[], tuple[int, frozenset[str]]] | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._local = threading.local()
        self._buffers: list[tuple[int, deque]] = []  # (pid, buffer) of every thread
        self._buffers_lock = threading.Lock()

    def dequeue(self):
        buffered = self._buffer()
        if buffered:
            return buffered.popleft().member[8:]
        if self.outcomes_waiting is not None and self.outcomes_waiting():
            data = self._take_message(block=False)
            if data is not None:
                return data  # its claim writes them
            self.write_outcomes()
        elif self.blocking and self._plan()[0] > 1:
            data = self._take_message(block=False)  # a batch when there is work (a block takes one)
            if data is not None:
                return data
        return self._take_message(block=self.blocking)

    def upcoming(self) -> list[tuple[str, str]]:
        """(task id, task type) of the messages this thread has taken and not yet run."""
        return [(m.task_id, m.name) for m in self._buffer()]

    def return_buffered(self) -> int:
        """Put every message this process's threads hold back on the queue (a stopping
        worker), with the scores they had. Returns how many."""
        with self._buffers_lock:
            held = [m for pid, buffer in self._buffers if pid == os.getpid() for m in buffer]
            for pid, buffer in self._buffers:
                if pid == os.getpid():
                    buffer.clear()
        if held:
            self.conn.zadd(self.queue_key, {m.member: m.score for m in held})
        return len(held)

    def _buffer(self) -> deque:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # a new thread, or a forked child
            local.pid, local.buffer = os.getpid(), deque()
            with self._buffers_lock:
                self._buffers = [(pid, b) for pid, b in self._buffers if pid == os.getpid()]
                self._buffers.append((local.pid, local.buffer))
        return local.buffer

    def _plan(self) -> tuple[int, frozenset[str]]:
        return self.batch_plan() if self.batch_plan is not None else (1, frozenset())

    def _keep(self, popped: list[tuple[bytes, float]], types: frozenset[str]) -> bytes | None:
        """The first popped message, to run now; after it those of `types` wait buffered,
        and the others go back on the queue."""
        if not popped:
            return None
        kept = [_Held(*popped[0])]
        # A long first task would hold up the rest: they go back, for another worker.
        for member, score in popped[1:] if kept[0].name in types else ():
            held = _Held(member, score)
            if held.name not in types:
                break
            kept.append(held)
        rest = popped[len(kept):]
        if rest:
            self.conn.zadd(self.queue_key, dict(rest))
        self._buffer().extend(kept[1:])
        return kept[0].member[8:]

    def _take_message(self, block: bool):
        ride = self.outgoing() if self.outgoing is not None else None
        count, types = (1, frozenset()) if block else self._plan()
        if ride is None:
            if block:
                return super().dequeue()
            return self._keep(_pairs(self.conn.zpopmin(self.queue_key, count)), types)
        command, done = ride
        pop = ("BZPOPMIN", self.queue_key, self.read_timeout) if block else ("ZPOPMIN", self.queue_key, count)
        pool = self.conn.connection_pool
        conn = pool.get_connection()
        answered = False
        try:
            conn.send_packed_command(conn.pack_commands([command, pop]))
            try:
                conn.read_response()
            except redis.ResponseError as exc:  # e.g. a script Redis forgot: sent again
                answered = True
                done(exc)
            else:
                answered = True
                done(None)
            reply = conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            conn.disconnect()
            if not answered:
                done(exc)
            # As a plain dequeue would (with the client's retries): a message popped on the
            # lost connection is queued again by the reaper's sweep, as any lost dequeue.
            return super().dequeue() if block else None
        except BaseException as exc:
            conn.disconnect()
            if not answered:
                done(exc)
            raise
        finally:
            pool.release(conn)
        if not reply:
            return None
        if block:  # BZPOPMIN answers (key, prefix + data, score)
            return reply[1][8:]
        return self._keep(_pairs(reply), types)


def _pairs(reply) -> list[tuple[bytes, float]]:
    """ZPOPMIN's answer as (member, score) pairs: flat in RESP2, pairs in RESP3 (and as
    redis-py parses it)."""
    if not reply:
        return []
    if isinstance(reply[0], (list, tuple)):
        return [(m, float(s)) for m, s in reply]
    return [(reply[i], float(reply[i + 1])) for i in range(0, len(reply), 2)]


class _Held:
    """A message a worker took from the queue ahead of running it."""
    __slots__ = ("member", "score", "task_id", "name")

    def __init__(self, member: bytes, score: float) -> None:
        self.member, self.score = member, score  # as the queue held it: prefix + data
        match = _MESSAGE_HEAD.match(member, 8)
        # Huey names a task "<module>.<name>"; ours are named by their type.
        self.task_id, self.name = ((match.group(1).decode(), match.group(2).decode().rpartition(".")[2])
                                   if match else ("", ""))


class QueueHuey(_NoRevokeFlags, PriorityRedisHuey):
    storage_class = QueueStorage


class EmbeddedHuey(_NoRevokeFlags, SqliteHuey):
    pass


@dataclass(frozen=True)
class QueueChoice:
    mode: str     # "redis" or "embedded"
    reason: str   # why this mode is active, for health and logs


def choose_backend(settings: Settings) -> QueueChoice:
    """Redis whenever REDIS_URL is set, reachable or not; embedded only when it is unset.

    A process that fell back to an embedded queue because Redis was down at its start would
    run tasks apart from the Redis workers, unseen by them (a split brain). Instead it
    serves in Redis mode: queueing answers 503 `queue_unavailable` until Redis answers, and
    everything else works from the database meanwhile.
    """
    if not settings.redis_url:
        return QueueChoice("embedded", "REDIS_URL is not set")
    reason = f"REDIS_URL {_safe_url(settings.redis_url)}"
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        log.warning("Redis at %s is unreachable at start-up (%s): serving anyway; tasks are "
                    "refused with 503 until it answers", _safe_url(settings.redis_url), exc)
    finally:
        client.close()
    return QueueChoice("redis", reason)


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"


def make_huey(settings: Settings, mode: str) -> Huey:
    # Results live in the SQL database, read as often as wanted; Huey keeps none.
    common = dict(name=QUEUE_NAME, results=False, serializer=JSONSerializer(), utc=True)
    if mode == "redis":
        # Short socket timeouts: a request that queues a task answers 503 quickly when Redis
        # is down (a refused connection fails at once; a silent one after a second). The
        # read timeout stays above Huey's 1-second blocking dequeue.
        pool = redis.ConnectionPool.from_url(settings.redis_url, socket_connect_timeout=1,
                                             socket_timeout=3)
        # A sorted set ordered by priority, then by time: interactive work overtakes a
        # backlog of bulk work (bench/bench_priority.py: no measurable cost in throughput).
        huey = QueueHuey(connection_pool=pool, **common)
        _drop_plain_list_queue(huey)
        return huey
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return EmbeddedHuey(filename=str(settings.queue_file), **common)


def _drop_plain_list_queue(huey: PriorityRedisHuey) -> None:
    """A queue left by a version without priorities is a Redis list under the same key.
    Its messages only name tasks whose records are still waiting: drop the list and the
    reaper's queue marker, and the reaper queues every waiting task again, by priority."""
    from jobs.reaper import QUEUE_MARKER_KEY
    storage = huey.storage
    try:
        kind = storage.conn.type(storage.queue_key)
    except redis.RedisError:
        return  # Redis is down at start-up: the process serves anyway (see choose_backend)
    if kind == b"list":
        log.warning("the Redis queue is a plain list from an earlier version: queueing the "
                    "waiting tasks again by priority")
        storage.conn.delete(storage.queue_key, QUEUE_MARKER_KEY)


def queued_ids(huey: Huey) -> set[str]:
    """The task ids of every message waiting in the queue (ids are our task ids)."""
    found = set()
    for raw in huey.storage.enqueued_items():
        match = _MESSAGE_HEAD.match(bytes(raw))
        if match:
            found.add(match.group(1).decode())
    return found


# A message starts `{"$message":["<task id>","<task name>",...` (see JSONSerializer).
_MESSAGE_HEAD = re.compile(rb'\{"\$message":\["([^"]+)","([^"]+)"')
