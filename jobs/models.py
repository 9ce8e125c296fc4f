"""Tables of the system of record. Times are timezone-aware UTC."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON, Boolean, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text,
    UniqueConstraint, text,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """SQLite forgets the zone; hand back aware UTC times on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


# The largest id an Integer column holds on every database (PostgreSQL's is 32-bit, and a
# bound parameter is cast to the column's type: a larger number is an error, not a miss).
MAX_ID = 2**31 - 1


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime | None) -> str | None:
    """A time as every answer and event writes it: ISO 8601 in UTC ending in `Z` (None: None)."""
    if value is None:
        return None
    if value.utcoffset():  # another zone: say it in UTC (naive and UTC times are kept as they are)
        value = value.astimezone(dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(utcnow())


def from_iso(text: str) -> dt.datetime:
    """A time written by `iso` (or any ISO 8601 text) read back; ValueError when it is not one."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


metadata = MetaData()

PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED = (
    "PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED",
)
STATUSES = (PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED)
FINAL_STATUSES = frozenset({SUCCESS, FAILURE, REVOKED})
WAITING_STATUSES = (PENDING, RETRY)

tasks = Table(
    "tasks", metadata,
    Column("id", String(64), primary_key=True),
    Column("type", String(40), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("params", JSON, nullable=False),
    Column("status", String(10), nullable=False),
    Column("progress_done", Integer, nullable=False, default=0),
    Column("progress_total", Integer, nullable=False, default=0),
    Column("result", JSON),
    Column("error", JSON),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("worker", String(200)),
    Column("terminate", Boolean, nullable=False, default=False),
    Column("parent_id", String(64)),
    Column("priority", Integer, nullable=False, server_default=text("0")),  # higher runs first
    Column("enqueued_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # Bumped by every change; each event carries it, so the event bus can tell which
    # changes it has sent (see jobs/relay.py) and never sends an older one after a newer.
    Column("version", Integer, nullable=False, default=1, server_default="1"),
    # Lists are newest first and read one status at a time (jobs/queries.py), so each of
    # these serves a page by a range seek on (enqueued_at, id) under its equality prefix,
    # whatever the size of the history; the status one also counts the unfinished tasks.
    Index("ix_tasks_status_keyset", "status", "enqueued_at", "id"),
    Index("ix_tasks_type_keyset", "type", "status", "enqueued_at", "id"),
    Index("ix_tasks_owner_keyset", "owner", "status", "enqueued_at", "id"),
    Index("ix_tasks_enqueued", "enqueued_at"),  # the weekly report's period
    Index("ix_tasks_finished", "finished_at"),  # retention
    Index("ix_tasks_parent", "parent_id"),      # "retried as ..."
    Index("ix_tasks_updated", "updated_at"),    # the relay's look at recent changes
)

# The timeline of each task: one row per change of state (progress updates are not kept).
task_history = Table(
    "task_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status", String(10), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(200)),
    Column("detail", String(500)),
    Index("ix_task_history_task", "task_id", "id"),
)

# One row per worker process; the reaper reads `last_seen` to find dead ones.
workers = Table(
    "workers", metadata,
    Column("id", String(200), primary_key=True),
    Column("hostname", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("running", JSON, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
    # Tasks this worker has claimed since it started (written with each heartbeat).
    Column("tasks_run", Integer, nullable=False, server_default=text("0")),
    # Set from the Workers page: finish what it runs, take nothing new. The worker reads it
    # with each heartbeat and writes back, in `drain_seen_at`, the request it acts on: it has
    # obeyed when the two are equal. Times written by different machines (the web's request,
    # the worker's heartbeat) are never compared to decide it: their clocks differ.
    Column("drain_requested_at", UTCDateTime),
    Column("drain_seen_at", UTCDateTime),
)

books = Table(
    "books", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(200), nullable=False),
    Column("title", String(300), nullable=False),
    Column("author", String(300), nullable=False, default=""),
    Column("genre", String(300), nullable=False, default=""),
    Column("blurb", Text, nullable=False, default=""),
    Column("audience", String(300), nullable=False, default=""),
    Column("keywords", JSON, nullable=False),
    Column("link", String(2000), nullable=False, default=""),
    Column("launch_date", String(10)),
    Column("comparables", JSON, nullable=False),
    Column("tone", String(20), nullable=False, default="warm"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_books_owner_created", "owner", "created_at"),
)

posts = Table(
    "posts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # A background task's id, or the id of an immediate (small) batch.
    Column("batch_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("owner", String(200), nullable=False),
    Column("book_id", Integer),
    Column("platform", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("length", Integer, nullable=False),
    Column("limit", Integer, nullable=False),
    Column("writer", String(40), nullable=False),
    Column("status", String(20), nullable=False, default="draft"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("approved_at", UTCDateTime),
    # The publishing calendar: when a post goes out, when it was marked published.
    Column("scheduled_at", UTCDateTime),
    Column("published_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
    Column("label", String(60)),  # what a planned post is for ("Cover reveal", ...)
    # A re-run of a task rewrites its posts instead of adding duplicates.
    UniqueConstraint("batch_id", "seq", name="uq_posts_batch_seq"),
    Index("ix_posts_owner_created", "owner", "created_at"),
    Index("ix_posts_scheduled", "scheduled_at"),  # the calendar and its feeds
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(200)),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("name", String(100), nullable=False, default=""),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(12), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

# Each user's secret calendar feed address (a capability: whoever has it reads the feed).
calendar_feeds = Table(
    "calendar_feeds", metadata,
    Column("user_id", Integer, primary_key=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Signed-in browsers. The cookie carries a random secret; only its SHA-256 is kept. Ending
# a session deletes its row, so a copied cookie stops working at once.
sessions = Table(
    "sessions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("address", String(64), nullable=False, server_default=""),
    Column("agent", String(200), nullable=False, server_default=""),
    Index("ix_sessions_user", "user_id"),
)

# Who did what to whom: operator actions, kept for managers to read.
audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(254), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target", String(200)),
    Column("detail", JSON),
    Index("ix_audit_at", "at"),
)

# Small key/value state shared by all processes (autonomous mode, ...).
state = Table(
    "state", metadata,
    Column("key", String(100), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Finished tasks counted as they finish (jobs/task_stats.py): per period, type and final
# status, the number of tasks (metric "n", bucket -1) and histograms of run and wait time
# (metrics "run" and "wait", one row per log-spaced bucket). Stats over any window read
# these instead of the tasks, and they outlive the tasks that retention prunes. Recent
# periods are minutes; older ones are folded into hours, then days.
task_stats = Table(
    "task_stats", metadata,
    Column("metric", String(4), primary_key=True),
    Column("period_start", UTCDateTime, primary_key=True),
    Column("period", Integer, primary_key=True),  # seconds: 60, 3600 or 86400
    Column("type", String(40), primary_key=True),
    Column("status", String(10), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
    Index("ix_task_stats_period", "period", "period_start"),  # folding minutes into hours
)

# Alerts raised for operators (the health page lists them) and how their delivery went.
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("key", String(200), nullable=False),
    Column("message", String(1000), nullable=False),
    Column("details", JSON, nullable=False),
    Column("state", String(20), nullable=False),  # pending, sent, failed, not_sent (no URL)
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("sent_at", UTCDateTime),
    Column("last_error", String(500)),
)

# Completion webhooks (jobs/webhooks.py): where to POST a task's record when it ends, each
# attempt and its answer, and each owner's signing secret.
webhooks = Table(
    "webhooks", metadata,
    Column("task_id", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("state", String(20), nullable=False),  # waiting, delivered, failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("due_at", UTCDateTime, nullable=False),
    Index("ix_webhooks_state_due", "state", "due_at"),
)

webhook_attempts = Table(
    "webhook_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", String(500)),
    Column("response", String(500)),
    Column("ms", Float),
    Index("ix_webhook_attempts_task", "task_id", "id"),
)

webhook_secrets = Table(
    "webhook_secrets", metadata,
    Column("owner", String(200), primary_key=True),
    Column("secret", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Idempotency-Key: the first answer to a request that created work, replayed to a client that
# sends the same key again (jobs/idempotency.py). Kept in SQL so it holds across web processes.
idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("user_id", Integer, primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer),  # None while the first request is being answered
    Column("response", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_created", "created_at"),
)
