"""Completion webhooks: when a task that was given a `callback_url` ends, POST its record there.

The body is the task's record as `GET /api/task-status/<id>` shows it to an author (the
worker named by its alias: the receiver is outside the service). It is signed with
HMAC-SHA256 under its owner's webhook secret: `X-Signature: t=<unix time>,v1=<hex>` where
the MAC is over `"<t>.<body>"`, so a receiver can check both the sender and the freshness
(reject an old `t` against replays). A delivery that fails is retried with back-off
(2, 4, 8, ... s) up to MAX_ATTEMPTS; every attempt and its answer is kept and shown on the
task's page.

A URL whose host resolves to a loopback, private, link-local or otherwise non-public address
is not posted to (the attempt fails, saying why) unless WEBHOOK_PRIVATE_ADDRESSES is set: the
answers are kept and shown to whoever asked, so any user could otherwise read services
reachable only from inside. The host is resolved once and the request goes to the address
checked (the name kept for the Host header and TLS), so a name that resolves elsewhere by
the time of the connection (DNS rebinding) changes nothing.

Each web process runs a Deliverer thread that looks for ended tasks with a callback still
due. A delivery is claimed by moving its due time forward in one UPDATE, so with several
web processes each attempt is made once.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import Engine, insert, select, update

from jobs.background import BackgroundThread
from jobs.db import reading
from jobs.models import FINAL_STATUSES, iso, tasks, utcnow, webhook_attempts, webhook_secrets, webhooks
from jobs.tracking import task_view

log = logging.getLogger("jobs.webhooks")

MAX_ATTEMPTS = 6
POLL = 0.5          # seconds between looks for due deliveries
CLAIM_FOR = 60.0    # seconds a claimed delivery is left to its sender before another may try
TIMEOUT = 10.0


# -- secrets --

def secret_for(db: Engine, owner: str, *, rotate: bool = False) -> str:
    """The owner's signing secret, made on first use (or replaced when `rotate`)."""
    with db.begin() as conn:
        row = conn.execute(select(webhook_secrets.c.secret)
                           .where(webhook_secrets.c.owner == owner)).first()
        if row is not None and not rotate:
            return row[0]
        secret = "whsec_" + secrets.token_urlsafe(32)
        conn.execute(webhook_secrets.delete().where(webhook_secrets.c.owner == owner))
        conn.execute(insert(webhook_secrets).values(owner=owner, secret=secret, created_at=utcnow()))
    return secret


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# -- registering and reading --

def register(db: Engine, task_id: str, owner: str, url: str) -> None:
    """Ask for a POST to `url` when the task ends (call right after recording the task)."""
    secret_for(db, owner)  # made now, so the owner can read it before the first delivery
    with db.begin() as conn:
        conn.execute(insert(webhooks).values(task_id=task_id, owner=owner, url=url,
                                             state="waiting", attempts=0, due_at=utcnow()))


def deliveries(db: Engine, task_id: str) -> dict | None:
    with reading(db) as conn:
        hook = conn.execute(select(webhooks).where(webhooks.c.task_id == task_id)).mappings().first()
        if hook is None:
            return None
        rows = conn.execute(select(webhook_attempts).where(webhook_attempts.c.task_id == task_id)
                            .order_by(webhook_attempts.c.id)).mappings().all()
    return {"url": hook["url"], "requested_by": hook["owner"], "state": hook["state"], "attempts": [
        {"attempt": r["attempt"], "at": iso(r["at"]), "status_code": r["status_code"],
         "error": r["error"], "response": r["response"], "ms": r["ms"]} for r in rows]}


# -- delivering --

class Refused(Exception):
    """The URL's host is at an address deliveries may not go to."""


def pinned(url: str, private_addresses: bool) -> tuple[str, str, str]:
    """(the URL with its host resolved to one address, the Host header, the TLS name).
    Refused when any address of the host is not public, unless `private_addresses`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0])
                 for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    if not private_addresses:
        for ip in addresses:
            if not ip.is_global:
                raise Refused(f"refused: {host} is at {ip}, not a public address "
                              "(WEBHOOK_PRIVATE_ADDRESSES allows it)")
    ip = addresses[0]
    userinfo, at, host_header = parts.netloc.rpartition("@")
    netloc = userinfo + at + (f"[{ip}]" if ip.version == 6 else str(ip))
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), host_header, host


class Deliverer(BackgroundThread):
    thread_name = "webhook-deliverer"
    join_timeout = TIMEOUT + 2

    def __init__(self, db: Engine, *, present: Callable[[dict], dict] = lambda record: record,
                 private_addresses: bool = False) -> None:
        super().__init__()
        self.db = db
        self.present = present  # the record as the receiver is shown it
        self.private_addresses = private_addresses

    def _loop(self) -> None:
        failing = False
        # No connection kept: one is opened to an address for the TLS name of one delivery.
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False,
                          limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self._stop.wait(POLL):
                try:
                    while self.deliver_one(client):
                        if self._stop.is_set():
                            return
                    failing = False
                except Exception:
                    if not failing:  # one line per outage
                        log.exception("webhook deliveries failed; retrying every %ss", POLL)
                    failing = True

    def _claim(self) -> dict | None:
        now = utcnow()
        with self.db.begin() as conn:
            due = conn.execute(
                select(webhooks.c.task_id, webhooks.c.due_at)
                .join(tasks, tasks.c.id == webhooks.c.task_id)
                .where(webhooks.c.state == "waiting", webhooks.c.due_at <= now,
                       tasks.c.status.in_(FINAL_STATUSES))
                .order_by(webhooks.c.due_at).limit(1)).first()
            if due is None:
                return None
            taken = conn.execute(
                update(webhooks).where(webhooks.c.task_id == due.task_id,
                                       webhooks.c.due_at == due.due_at)
                .values(due_at=now + dt.timedelta(seconds=CLAIM_FOR))).rowcount
            if not taken:
                return {}  # another process took it: look again
            hook = conn.execute(select(webhooks).where(webhooks.c.task_id == due.task_id)).mappings().one()
            record = conn.execute(select(tasks).where(tasks.c.id == due.task_id)).mappings().one()
        return {"hook": dict(hook), "record": self.present(task_view(record))}

    def deliver_one(self, client: httpx.Client) -> bool:
        """Make one due attempt; False when nothing is due."""
        claimed = self._claim()
        if claimed is None:
            return False
        if not claimed:
            return True
        hook, record = claimed["hook"], claimed["record"]
        attempt = hook["attempts"] + 1
        body = json.dumps(record, separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "BookMarketingAgent-Webhook",
                   "X-Webhook-Id": f"{hook['task_id']}:{attempt}",
                   "X-Signature": sign(secret_for(self.db, hook["owner"]), int(time.time()), body)}
        started = time.perf_counter()
        status_code = error = answer = None
        try:
            target, host, tls_name = pinned(hook["url"], self.private_addresses)
            response = client.post(target, content=body, headers={**headers, "Host": host},
                                   extensions={"sni_hostname": tls_name})
            status_code, answer = response.status_code, response.text[:500]
            if not response.is_success:
                error = f"HTTP {response.status_code}"
        except Refused as exc:
            error = str(exc)
        except (httpx.HTTPError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        ms = round((time.perf_counter() - started) * 1000, 1)
        if error is None:
            state, due = "delivered", utcnow()
        elif attempt >= MAX_ATTEMPTS:
            state, due = "failed", utcnow()
            log.warning("webhook for task %s gave up after %d attempts: %s", hook["task_id"],
                        attempt, error)
        else:
            state, due = "waiting", utcnow() + dt.timedelta(seconds=2 ** attempt)
        with self.db.begin() as conn:
            conn.execute(insert(webhook_attempts).values(
                task_id=hook["task_id"], attempt=attempt, at=utcnow(), status_code=status_code,
                error=error, response=answer, ms=ms))
            conn.execute(update(webhooks).where(webhooks.c.task_id == hook["task_id"])
                         .values(state=state, attempts=attempt, due_at=due))
        return True
