"""Stored posts. A task writes each post as it is made, keyed by (batch, seq), so a re-run
of the same task rewrites its posts instead of adding duplicates."""
from __future__ import annotations

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobs.models import posts, utcnow


def store_post(db: Engine, *, batch_id: str, seq: int, owner: str, post: dict,
               book_id: int | None = None) -> None:
    values = dict(batch_id=batch_id, seq=seq, owner=owner, book_id=book_id, platform=post["platform"],
                  text=post["text"], length=post["length"], limit=post["limit"],
                  writer=post["writer"], status="draft", created_at=utcnow())
    dialect = postgresql if db.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(posts).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["batch_id", "seq"],
        set_={k: stmt.excluded[k] for k in ("platform", "text", "length", "limit", "writer")},
    )
    with db.begin() as conn:
        conn.execute(stmt)


def batch_posts(db: Engine, batch_id: str, owner: str | None = None) -> list[dict]:
    """A batch's posts in order; with `owner`, only if they are theirs."""
    query = select(posts).where(posts.c.batch_id == batch_id)
    if owner is not None:
        query = query.where(posts.c.owner == owner)
    with db.connect() as conn:
        rows = conn.execute(query.order_by(posts.c.seq)).mappings().all()
    return [post_view(r) for r in rows]


def approve_posts(db: Engine, owner: str, post_ids: list[int]) -> tuple[list[int], list[int]]:
    """Approve the owner's drafts among `post_ids`; return (approved, not found or not theirs)."""
    with db.begin() as conn:
        found = set(conn.execute(
            update(posts).where(posts.c.id.in_(post_ids), posts.c.owner == owner)
            .values(status="approved", approved_at=utcnow()).returning(posts.c.id)
        ).scalars())
    return sorted(found), [i for i in post_ids if i not in found]


def post_view(row) -> dict:
    return {"id": row["id"], "platform": row["platform"], "text": row["text"],
            "length": row["length"], "limit": row["limit"], "writer": row["writer"],
            "status": row["status"], "seq": row["seq"], "book_id": row["book_id"]}
