"""The task types. Each body is thin: it calls the engine and reports progress."""
from __future__ import annotations

import datetime as dt
import importlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import desc, func, insert, select

from jobs import queries, reports, retention, task_stats, task_types
from jobs.execution import Body, TaskContext
from jobs.models import STARTED, task_history, tasks, workers, utcnow

# The writers, the platforms' counters and the posts (twitter-text's tables above all: 0.5-0.7 s
# of CPU) are not imported with this module: a worker that only runs status checks and
# approvals, or a command that only reads (`inspect`), never loads them. A worker loads them
# with its first task that writes posts, before that task's timeout starts
# (Executor._claim_and_run); a web process with the rest of its start-up.


def preload_writers() -> None:
    """Import what the post-writing bodies use (at once after the first time)."""
    for module in ("jobs.campaign", "jobs.generation", "jobs.posts", "jobs.writers.llm",
                   "jobs.writers.offline"):
        importlib.import_module(module)


@contextmanager
def model_retries_in_timeline(ctx: TaskContext) -> Iterator[None]:
    """Each retried model call's error becomes a line of the task's timeline."""
    from jobs.writers.llm_http import attempt_notes

    def note(detail: str) -> None:
        with ctx.db.begin() as conn:
            conn.execute(insert(task_history).values(
                task_id=ctx.task_id, at=ctx.now(), status=STARTED, attempt=ctx.attempt,
                detail=f"model call failed: {detail}"[:500]))
    token = attempt_notes.set(note)
    try:
        yield
    finally:
        attempt_notes.reset(token)


def content_generation(ctx: TaskContext) -> dict:
    from jobs.generation import generate_batch

    total = len(ctx.params["platforms"]) * ctx.params["count_per_platform"]
    ctx.progress(0, total)
    with model_retries_in_timeline(ctx):
        made = generate_batch(ctx.settings, ctx.db, batch_id=ctx.task_id, owner=ctx.owner,
                              params=ctx.params, on_post=lambda done: ctx.progress(done, total))
    return {"posts": made, "count": len(made)}


def weekly_report(ctx: TaskContext) -> dict:
    return reports.weekly_report(ctx.db, progress=ctx.progress)


def daily_operations(ctx: TaskContext) -> dict:
    """For every author active in the last 30 days, draft today's posts from their latest
    successful generation request: one per platform they used, for the same book."""
    from jobs.generation import batch_seed, book_from_params, generate
    from jobs.posts import store_post
    from jobs.writers import make_writer

    since = utcnow() - dt.timedelta(days=30)
    succeeded = (tasks.c.type == "content_generation", tasks.c.status == "SUCCESS")
    with ctx.db.connect() as conn:
        latest = conn.execute(
            select(tasks.c.owner, func.max(tasks.c.enqueued_at))
            .where(*succeeded, tasks.c.enqueued_at >= since)
            .group_by(tasks.c.owner)).all()
        requests = []
        for owner, at in latest:
            params = conn.execute(
                select(tasks.c.params).where(tasks.c.owner == owner, tasks.c.enqueued_at == at,
                                             *succeeded)
                .order_by(desc(tasks.c.id)).limit(1)).scalar_one()
            requests.append((owner, params))
    ctx.progress(0, len(requests))
    writer = make_writer(**ctx.settings.writer_options())
    seq = 0
    drafted: dict[str, int] = {}
    with model_retries_in_timeline(ctx):
        for done, (owner, params) in enumerate(requests, start=1):
            for post in generate(writer, book_from_params(params), params["platforms"], 1,
                                 seed=batch_seed(f"{ctx.task_id}:{owner}"), today=dt.date.today(),
                                 mastodon_limit=ctx.settings.mastodon_limit):
                store_post(ctx.db, batch_id=ctx.task_id, seq=seq, owner=owner, post=post)
                seq += 1
                drafted[owner] = drafted.get(owner, 0) + 1
            ctx.progress(done, len(requests))
    return {"authors": len(requests), "posts_drafted": seq, "by_author": drafted}


def post_approval(ctx: TaskContext) -> dict:
    from jobs.posts import approve_plan, approve_posts

    if "plan" in ctx.params:  # every draft of the plan a task wrote (a launch campaign)
        return {"approved": approve_plan(ctx.db, ctx.owner, ctx.params["plan"]), "not_found": [],
                "plan": ctx.params["plan"]}
    approved, missing = approve_posts(ctx.db, ctx.owner, ctx.params["post_ids"])
    return {"approved": approved, "not_found": missing}


def launch_campaign(ctx: TaskContext) -> dict:
    from jobs.campaign import write_campaign

    with model_retries_in_timeline(ctx):
        return write_campaign(ctx.settings, ctx.db, batch_id=ctx.task_id, owner=ctx.owner,
                              params=ctx.params, now=utcnow(), on_post=ctx.progress)


def status_check(ctx: TaskContext) -> dict:
    # One step: STARTED then SUCCESS says all there is; progress reports would only cost.
    # Counting the unfinished tasks costs as much as the backlog is long, so a worker
    # process answers from a snapshot at most STATUS_SNAPSHOT_AGE old (its `checked_at`
    # says when): a deep queue of status checks does not count the queue once per check.
    taken, snapshot = _status_snapshot
    if snapshot is None or time.monotonic() - taken >= STATUS_SNAPSHOT_AGE:
        snapshot = _take_status_snapshot(ctx)
        _status_snapshot[:] = [time.monotonic(), snapshot]
    return dict(snapshot)


STATUS_SNAPSHOT_AGE = 1.0
_status_snapshot: list = [0.0, None]


def _take_status_snapshot(ctx: TaskContext) -> dict:
    cutoff = ctx.now() - dt.timedelta(seconds=ctx.settings.worker_lost_after)  # as heartbeats
    by_status: dict[str, int] = {}
    for per_status in queries.counts(ctx.db).values():  # stored aggregates: no table scan
        for status, n in per_status.items():
            by_status[status] = by_status.get(status, 0) + n
    with ctx.db.connect() as conn:
        alive = conn.execute(select(func.count()).select_from(workers)
                             .where(workers.c.last_seen >= cutoff,
                                    workers.c.stopped_at.is_(None))).scalar_one()
    return {"tasks_by_status": by_status, "workers_alive": alive, "checked_at": utcnow().isoformat()}


def retention_run(ctx: TaskContext) -> dict:
    """Fold the stats' old minutes first (cheap, and what pruned tasks leave behind), then
    prune the history in batches, reporting progress after each."""
    folded = task_stats.fold(ctx.db)
    return {**retention.prune(ctx.db, ctx.settings.task_retention_days, progress=ctx.progress),
            "stats_rows_folded": folded}


# Each type's body, by the name the registry gives (a missing one fails at import).
BODIES: dict[str, Body] = {t.name: globals()[t.body] for t in task_types.TYPES.values()}
