"""A batch's posts are stored in steps, one statement per step, and a re-run rewrites them."""

from __future__ import annotations

from sqlalchemy import func, select

from jobs.db import make_engine
from jobs.generation import generate_batch
from jobs.models import posts
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
