"""Reading with a token records its use at most once a minute: a read is not a write."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import event, select, update

from jobs import users
from jobs.db import make_engine
from jobs.models import api_tokens


def test_token_use_is_written_once_a_minute(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    user = users.create_user(db, "reader@example.com", "viewer")
    token, _ = users.create_token(db, user.id)
    writes: list[str] = []
    event.listen(db, "before_cursor_execute",
                 lambda _c, _cur, sql, *_: writes.append(sql) if sql.startswith("UPDATE") else None)

    for _ in range(5):
        assert users.user_for_token(db, token).email == "reader@example.com"
    assert len(writes) == 1  # the first use is recorded, the next ones within the minute are not

    with db.begin() as conn:  # the last recorded use is now more than a minute old
        conn.execute(update(api_tokens).values(
            last_used_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)))
    writes.clear()
    users.user_for_token(db, token)
    assert len(writes) == 1
    with db.connect() as conn:
        used = conn.execute(select(api_tokens.c.last_used_at)).scalar_one()
    assert dt.datetime.now(dt.UTC) - used < dt.timedelta(seconds=10)
    db.dispose()
