"""The Huey instance for the active backend, and the JSON serializer its messages travel in.

Huey pickles by default, so anyone able to write to Redis could run code in the workers.
Here a message is JSON; anything else is refused before it is interpreted.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import redis
from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey
from huey.registry import Message
from huey.serializer import Serializer

from jobs.settings import Settings, SettingsError

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


@dataclass(frozen=True)
class QueueChoice:
    mode: str     # "redis" or "embedded"
    reason: str   # why this mode is active, for health and logs


def choose_backend(settings: Settings) -> QueueChoice:
    """Redis when configured and reachable; else embedded, unless fallback is forbidden."""
    if not settings.redis_url:
        return QueueChoice("embedded", "REDIS_URL is not set")
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        if not settings.queue_fallback:
            raise SettingsError(
                f"Redis at {_safe_url(settings.redis_url)} is unreachable ({exc}) and "
                "QUEUE_FALLBACK=false forbids the embedded queue: start Redis or fix REDIS_URL"
            ) from None
        reason = f"Redis at {_safe_url(settings.redis_url)} was unreachable at start-up ({exc})"
        log.warning("%s: running the embedded queue inside this process instead", reason)
        return QueueChoice("embedded", reason)
    return QueueChoice("redis", f"REDIS_URL {_safe_url(settings.redis_url)}")


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
        # A sorted set ordered by priority, then by time: interactive work overtakes a
        # backlog of bulk work (bench/bench_priority.py: no measurable cost in throughput).
        huey = PriorityRedisHuey(url=settings.redis_url, **common)
        _drop_plain_list_queue(huey)
        return huey
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(filename=str(settings.queue_file), **common)


def _drop_plain_list_queue(huey: PriorityRedisHuey) -> None:
    """A queue left by a version without priorities is a Redis list under the same key.
    Its messages only name tasks whose records are still waiting: drop the list and the
    reaper's queue marker, and the reaper queues every waiting task again, by priority."""
    from jobs.reaper import QUEUE_MARKER_KEY
    storage = huey.storage
    if storage.conn.type(storage.queue_key) == b"list":
        log.warning("the Redis queue is a plain list from an earlier version: queueing the "
                    "waiting tasks again by priority")
        storage.conn.delete(storage.queue_key, QUEUE_MARKER_KEY)
