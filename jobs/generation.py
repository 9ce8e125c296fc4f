"""Post generation shared by the immediate path (small batches) and the background task."""
from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable, Iterator

from sqlalchemy import Engine

from jobs.platforms import get_platform
from jobs.posts import store_post
from jobs.settings import Settings
from jobs.writers import Book, Writer, make_writer

# The book used when a request names none; a later book catalogue replaces it.
SAMPLE_BOOK = {
    "title": "The Lighthouse Keeper's Daughter",
    "author": "Mara Ellison",
    "genre": "literary fiction",
    "blurb": (
        "On a storm-battered island, Nell keeps the light her father can no longer tend. "
        "When a stranger washes ashore with a letter addressed to her mother, Nell must "
        "choose between the life she knows and the truth the sea has kept for twenty years."
    ),
    "audience": "readers of quiet, atmospheric family stories",
    "keywords": ["lighthouse", "family secrets", "island life"],
    "link": "https://books.example.com/lighthouse-keepers-daughter",
    "tone": "warm",
}


def batch_seed(batch_id: str) -> int:
    return zlib.crc32(batch_id.encode())


def generate(writer: Writer, book: Book, platforms: list[str], count: int, *, seed: int,
             today: dt.date, mastodon_limit: int = 500) -> Iterator[dict]:
    """Yield posts one at a time, platform by platform, as API-ready dicts."""
    produced: list[str] = []
    for name in platforms:
        platform = get_platform(name, mastodon_limit=mastodon_limit)
        for post in writer.write_batch(book, platform, count, seed=seed, today=today,
                                       avoid=tuple(produced)):
            produced.append(post.text)
            yield post.to_dict()


def book_from_params(params: dict) -> Book:
    return Book.from_dict(params.get("book") or SAMPLE_BOOK)


def generate_batch(settings: Settings, db: Engine, *, batch_id: str, owner: str, params: dict,
                   on_post: Callable[[int], None] | None = None) -> list[dict]:
    """Write a batch's posts, storing each as it is made (a re-run rewrites, never adds)."""
    writer = make_writer(**settings.writer_options())
    made: list[dict] = []
    posts = generate(writer, book_from_params(params), params["platforms"],
                     params["count_per_platform"], seed=params.get("seed", batch_seed(batch_id)),
                     today=dt.date.today(), mastodon_limit=settings.mastodon_limit)
    for seq, post in enumerate(posts):
        store_post(db, batch_id=batch_id, seq=seq, owner=owner, post=post)
        made.append(post)
        if on_post is not None:
            on_post(len(made))
    return made
