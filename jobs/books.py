"""Book profiles: what posts are written about. Each belongs to one owner."""
from __future__ import annotations

from sqlalchemy import Engine, delete, desc, insert, select, update

from jobs.db import reading
from jobs.models import books, iso, posts, utcnow

FIELDS = ("title", "author", "genre", "blurb", "audience", "keywords", "link", "launch_date",
          "comparables", "tone")


def book_view(row) -> dict:
    view = {"id": row["id"], "owner": row["owner"], **{f: row[f] for f in FIELDS}}
    view["created_at"] = iso(row["created_at"])
    view["updated_at"] = iso(row["updated_at"])
    return view


def create_book(db: Engine, owner: str, fields: dict) -> dict:
    now = utcnow()
    with db.begin() as conn:
        row = conn.execute(insert(books).values(owner=owner, created_at=now, updated_at=now,
                                                **_values(fields))
                           .returning(*books.c)).mappings().one()
    return book_view(row)


def get_book(db: Engine, book_id: int, owner: str | None = None) -> dict | None:
    """The book, or None when it does not exist or (with `owner`) is not theirs."""
    query = select(books).where(books.c.id == book_id)
    if owner is not None:
        query = query.where(books.c.owner == owner)
    with reading(db) as conn:
        row = conn.execute(query).mappings().first()
    return book_view(row) if row else None


def latest_book(db: Engine, owner: str) -> dict | None:
    with reading(db) as conn:
        row = conn.execute(select(books).where(books.c.owner == owner)
                           .order_by(desc(books.c.created_at), desc(books.c.id)).limit(1)
                           ).mappings().first()
    return book_view(row) if row else None


def list_books(db: Engine, owner: str | None = None, limit: int = 500) -> list[dict]:
    query = select(books).order_by(desc(books.c.created_at), desc(books.c.id)).limit(limit)
    if owner is not None:
        query = query.where(books.c.owner == owner)
    with reading(db) as conn:
        return [book_view(r) for r in conn.execute(query).mappings()]


def replace_book(db: Engine, book_id: int, owner: str | None, fields: dict) -> dict | None:
    stmt = update(books).where(books.c.id == book_id)
    if owner is not None:
        stmt = stmt.where(books.c.owner == owner)
    with db.begin() as conn:
        row = conn.execute(stmt.values(updated_at=utcnow(), **_values(fields))
                           .returning(*books.c)).mappings().first()
    return book_view(row) if row else None


def delete_book(db: Engine, book_id: int, owner: str | None = None) -> bool:
    """Delete a book; its posts stay, no longer linked to it."""
    stmt = delete(books).where(books.c.id == book_id)
    if owner is not None:
        stmt = stmt.where(books.c.owner == owner)
    with db.begin() as conn:
        if conn.execute(stmt).rowcount == 0:
            return False
        conn.execute(update(posts).where(posts.c.book_id == book_id).values(book_id=None))
    return True


def _values(fields: dict) -> dict:
    values = {f: fields.get(f) for f in FIELDS}
    values["keywords"] = list(values["keywords"] or [])
    values["comparables"] = list(values["comparables"] or [])
    for text_field in ("author", "genre", "blurb", "audience", "link"):
        values[text_field] = values[text_field] or ""
    values["tone"] = values["tone"] or "warm"
    return values
