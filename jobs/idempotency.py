"""Idempotency keys: a request that creates work, sent again with the same key, gets the first
answer instead of creating the work twice.

A key belongs to one user and lives `TTL`. The first request claims it (an INSERT: the
primary key makes the claim atomic across web processes), then stores its answer. A repeat
with the same request gets that answer; with another request (method, path or body), a
conflict; while the first is still being answered, "in progress".
"""
from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from jobs.models import idempotency_keys, utcnow

TTL = dt.timedelta(hours=24)
_PURGE_EVERY = 600.0  # seconds between deletions of expired keys, per process
_next_purge = 0.0


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Claim:
    outcome: str  # "new", "replay", "mismatch" or "in_progress"
    status: int | None = None
    response: dict | None = None


def claim(db: Engine, user_id: int, key: str, digest: str) -> Claim:
    _purge_now_and_then(db)
    now = utcnow()
    for _ in range(2):
        try:
            with db.begin() as conn:
                conn.execute(insert(idempotency_keys).values(
                    user_id=user_id, key=key, request_hash=digest, created_at=now))
            return Claim("new")
        except IntegrityError:
            pass
        with db.begin() as conn:
            row = conn.execute(select(idempotency_keys).where(
                idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)
            ).mappings().first()
            if row is not None and row["created_at"] < now - TTL:
                conn.execute(_row(user_id, key, delete(idempotency_keys)))
                continue  # expired: claim it afresh
        if row is None:
            continue  # released between our two statements
        if row["request_hash"] != digest:
            return Claim("mismatch")
        if row["status"] is None:
            return Claim("in_progress")
        return Claim("replay", row["status"], row["response"])
    return Claim("in_progress")


def store(db: Engine, user_id: int, key: str, status: int, response: dict) -> None:
    with db.begin() as conn:
        conn.execute(_row(user_id, key, update(idempotency_keys))
                     .values(status=status, response=response))


def release(db: Engine, user_id: int, key: str) -> None:
    """Forget a claim whose request failed without an answer worth replaying."""
    with db.begin() as conn:
        conn.execute(_row(user_id, key, delete(idempotency_keys)))


def _row(user_id: int, key: str, stmt):
    return stmt.where(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)


def _purge_now_and_then(db: Engine) -> None:
    global _next_purge
    if time.monotonic() < _next_purge:
        return
    _next_purge = time.monotonic() + _PURGE_EVERY
    with db.begin() as conn:
        conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < utcnow() - TTL))
