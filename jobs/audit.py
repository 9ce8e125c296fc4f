"""The audit log of operator actions: who did what, to what, when."""
from __future__ import annotations

from sqlalchemy import Engine, desc, insert, select

from jobs.db import reading
from jobs.models import audit_log, iso, utcnow


def record(db: Engine, actor: str, action: str, target: str | None, detail: dict | None = None) -> None:
    with db.begin() as conn:
        conn.execute(insert(audit_log).values(at=utcnow(), actor=actor, action=action,
                                              target=target, detail=detail or {}))


def recent(db: Engine, limit: int = 200) -> list[dict]:
    with reading(db) as conn:
        rows = conn.execute(select(audit_log).order_by(desc(audit_log.c.id)).limit(limit)).all()
    return [{"at": iso(r.at), "actor": r.actor, "action": r.action,
             "target": r.target, "detail": r.detail} for r in rows]
