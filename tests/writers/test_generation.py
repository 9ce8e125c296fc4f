"""A batch's posts are stored in steps, one statement per step, and a re-run rewrites them."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from jobs.db import make_engine
from jobs.generation import generate_batch
from jobs.models import posts
from jobs.posts import store_posts
from jobs.settings import load_settings

from .fixture_books import ROWS

PARAMS = {"book": ROWS[0], "platforms": ["twitter", "bluesky"], "count_per_platform": 3, "seed": 5}


def _run(tmp_path, step: float) -> tuple[list[dict], list[int], list[dict]]:
    db = make_engine(f"sqlite:///{tmp_path / 'posts.db'}")
    reported: list[int] = []
    made = generate_batch(load_settings(data_dir=str(tmp_path)), db, batch_id="b1", owner="ann",
                          params=PARAMS, on_post=reported.append, step=step)
    with db.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(posts).order_by(posts.c.seq)).mappings()]
    db.dispose()
    return made, reported, rows


def test_one_step_stores_the_whole_batch(tmp_path) -> None:
    made, reported, rows = _run(tmp_path, step=3600)
    assert reported == [6]
    assert [r["seq"] for r in rows] == list(range(6))
    assert [r["text"] for r in rows] == [p["text"] for p in made]
    assert {r["owner"] for r in rows} == {"ann"} and {r["status"] for r in rows} == {"draft"}


def test_every_post_its_own_step_and_a_rerun_rewrites(tmp_path) -> None:
    made, reported, rows = _run(tmp_path, step=0)
    assert reported == [1, 2, 3, 4, 5, 6]
    again, _, rows_again = _run(tmp_path, step=3600)
    assert again == made and len(rows_again) == 6
    assert [r["id"] for r in rows_again] == [r["id"] for r in rows]  # upserted, not added
    db = make_engine(f"sqlite:///{tmp_path / 'posts.db'}")
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(posts)).scalar_one() == 6
    db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def posts_db(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").database(f"posts_{tmp_path.name[-20:]}".lower())
    else:
        url = f"sqlite:///{tmp_path / 'posts.db'}"
    db = make_engine(url)
    yield db
    db.dispose()


def test_stored_posts_read_back_through_the_table_types(posts_db) -> None:
    """store_posts hands the driver one fixed statement (SQLite: run once per post;
    PostgreSQL: one array per column): what it writes reads back as the SQLAlchemy table
    types write it (aware UTC times), and a re-run rewrites rather than adds."""
    when = dt.datetime(2027, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    first = [{"platform": "twitter", "text": "One", "length": 3, "limit": 280, "writer": "offline"},
             {"platform": "bluesky", "text": "Two", "length": 3, "limit": 300, "writer": "offline",
              "scheduled_at": when, "label": "Cover reveal"}]
    store_posts(posts_db, batch_id="b1", first_seq=0, owner="ann", batch=first, book_id=None)
    again = [dict(first[0], text="One, rewritten", length=14), first[1]]
    store_posts(posts_db, batch_id="b1", first_seq=0, owner="ann", batch=again, book_id=None)
    with posts_db.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(posts).order_by(posts.c.seq)).mappings()]
    assert [(r["seq"], r["text"], r["status"], r["label"]) for r in rows] == [
        (0, "One, rewritten", "draft", None), (1, "Two", "draft", "Cover reveal")]
    assert rows[1]["scheduled_at"] == when and rows[1]["scheduled_at"].utcoffset() == dt.timedelta(0)
    assert rows[0]["scheduled_at"] is None
    assert abs(rows[0]["created_at"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_a_batch_is_stored_all_or_none(posts_db) -> None:
    """PostgreSQL stores a batch without a transaction of its own: its one statement is."""
    batch = [{"platform": "twitter", "text": "Fine", "length": 4, "limit": 280, "writer": "offline"},
             {"platform": "twitter", "text": None, "length": 0, "limit": 280, "writer": "offline"}]
    with pytest.raises(IntegrityError):
        store_posts(posts_db, batch_id="b2", first_seq=0, owner="ann", batch=batch, book_id=None)
    with posts_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(posts)).scalar_one() == 0


@pytest.mark.parametrize(("step", "sizes"), [(3600, [25, 25, 10]), (math.inf, [60])])
def test_a_background_batch_on_sqlite_stores_25_posts_a_transaction(tmp_path, step, sizes) -> None:
    """Each transaction holds SQLite's one write lock, which a request may be waiting for; a
    batch stored once at the end (a request's own, step=inf) is stored all or none."""
    db = make_engine(f"sqlite:///{tmp_path / 'posts.db'}")
    inserts: list[int] = []

    @event.listens_for(db, "before_cursor_execute")
    def count(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        if statement.startswith("INSERT INTO posts"):
            inserts.append(len(parameters) if executemany else 1)

    made = generate_batch(load_settings(data_dir=str(tmp_path)), db, batch_id="b1", owner="ann",
                          params={**PARAMS, "count_per_platform": 30}, step=step)
    assert len(made) == 60 and inserts == sizes
    db.dispose()
