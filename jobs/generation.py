"""Post generation shared by the immediate path (small batches) and the background task."""
from __future__ import annotations

import datetime as dt
import math
import time
import zlib
from collections.abc import Callable, Iterator

from sqlalchemy import Engine

from jobs import sqlite_turns
from jobs.platforms import get_platform
from jobs.posts import store_posts
from jobs.settings import Settings
from jobs.writers import Book, Writer, make_writer

# Seconds between two progress steps of a batch (each stores the posts made since the last).
PROGRESS_STEP = 0.2
# A batch written in the background on SQLite stores its posts in transactions of at most
# this many rows: each holds the database's one write lock, which a request may be waiting
# for (jobs/sqlite_turns.py).
STORE_ROWS = 25


class TooManyPosts(ValueError):
    """A request for more posts than MAX_POSTS_PER_REQUEST."""

    def __init__(self, requested: int, limit: int) -> None:
        super().__init__(f"{requested} posts requested; at most {limit} per request")
        self.requested, self.limit = requested, limit


def posts_requested(settings: Settings, platforms: list[str], count_per_platform: int) -> int:
    """How many posts a request asks for; TooManyPosts past the cap."""
    total = len(platforms) * count_per_platform
    if total > settings.max_posts_per_request:
        raise TooManyPosts(total, settings.max_posts_per_request)
    return total


def in_background(settings: Settings, total: int, asked: bool) -> bool:
    """Whether a batch is queued as a task (asked for, or ASYNC_THRESHOLD posts or more)
    rather than written while the client waits."""
    return asked or total >= settings.async_threshold


def batch_seed(batch_id: str) -> int:
    return zlib.crc32(batch_id.encode())


def generate(writer: Writer, book: Book, platforms: list[str], count: int, *, seed: int,
             today: dt.date, mastodon_limit: int = 500) -> Iterator[dict]:
    """Yield posts one at a time, platform by platform, as API-ready dicts. In a worker, each
    waits while a request waits for a write turn (jobs/sqlite_turns.py)."""
    produced: list[str] = []
    for name in platforms:
        platform = get_platform(name, mastodon_limit=mastodon_limit)
        for post in writer.write_batch(book, platform, count, seed=seed, today=today,
                                       avoid=tuple(produced)):
            produced.append(post.text)
            yield post.to_dict()
            sqlite_turns.give_way()


def book_from_params(params: dict) -> Book:
    """The book as it was when the task was queued (a snapshot travels in the parameters)."""
    return Book.from_dict(params["book"])


def generate_batch(settings: Settings, db: Engine, *, batch_id: str, owner: str, params: dict,
                   on_post: Callable[[int], None] | None = None, step: float = PROGRESS_STEP
                   ) -> list[dict]:
    """Write a batch's posts, storing them as they are made (a re-run rewrites, never adds).

    Posts are stored, and ``on_post`` told how many are done, once per progress step: every
    ``step`` seconds and at the end. A slow writer (a model over the network) reports
    each post; a fast one writes a few hundred between two statements.
    """
    writer = make_writer(**settings.writer_options())
    made: list[dict] = []
    stored = 0
    posts = generate(writer, book_from_params(params), params["platforms"],
                     params["count_per_platform"], seed=params.get("seed", batch_seed(batch_id)),
                     today=dt.date.today(), mastodon_limit=settings.mastodon_limit)

    # All at once when stored once at the end (the request waits for them, all or none)
    rows = STORE_ROWS if db.dialect.name == "sqlite" and not math.isinf(step) else math.inf

    def flush() -> None:
        nonlocal stored
        while stored < len(made):
            end = min(len(made), stored + rows)
            store_posts(db, batch_id=batch_id, first_seq=stored, owner=owner,
                        batch=made[stored:end], book_id=params.get("book_id"))
            stored = end
        if on_post is not None:
            on_post(stored)

    last = time.monotonic()
    for post in posts:
        made.append(post)
        if time.monotonic() - last >= step:
            flush()
            last = time.monotonic()
    if stored < len(made):
        flush()
    return made
