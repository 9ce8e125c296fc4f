"""Reading with a token records its use at most once a minute: a read is not a write; a web
process remembers a token's user for at most a second."""
from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import event, select, update

from jobs import users
from jobs.db import make_engine
from jobs.models import api_tokens
from tests.support import wait_until


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


def test_a_web_process_remembers_a_token_briefly_and_forgets_it_on_any_change(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    user = users.create_user(db, "script@example.com", "author")
    token, view = users.create_token(db, user.id)
    cache = users.TokenCache(db, ttl=0.5)
    reads: list[str] = []
    event.listen(db, "before_cursor_execute",
                 lambda _c, _cur, sql, *_: reads.append(sql) if sql.startswith("SELECT") else None)

    assert cache.get(token) is None  # not looked up yet
    assert cache.lookup(token).role == "author"
    reads.clear()
    assert cache.get(token).email == "script@example.com"
    assert reads == []  # answered from memory
    assert cache.get("bma_wrong") is None and cache.lookup("bma_wrong") is None

    # A change made by this process is seen at once: role, disabling, revoking.
    users.update_user(db, user.id, role="viewer")
    assert cache.get(token) is None and cache.lookup(token).role == "viewer"
    users.update_user(db, user.id, disabled=True)
    assert cache.get(token) is None and cache.lookup(token) is None
    users.update_user(db, user.id, disabled=False)
    assert cache.lookup(token) is not None
    assert users.revoke_token(db, user.id, view["id"])
    assert cache.get(token) is None and cache.lookup(token) is None

    # A change made by another process (written straight to the database here) is seen
    # within the cache's time.
    token, view = users.create_token(db, user.id)
    assert cache.lookup(token) is not None
    with db.begin() as conn:
        conn.execute(update(api_tokens).where(api_tokens.c.id == view["id"])
                     .values(revoked_at=dt.datetime.now(dt.UTC)))
    revoked = time.monotonic()
    wait_until(lambda: cache.get(token) is None and cache.lookup(token) is None, 5,
               "the revoked token to be refused")
    assert time.monotonic() - revoked <= 0.5 + 0.5
    db.dispose()


def test_a_lookup_during_a_change_of_this_process_is_not_remembered(tmp_path, monkeypatch):
    """A request reading the token while a manager disables its user (another thread of the
    same process) must not leave the old user remembered: the process forgets only once the
    change is committed, so a lookup that raced it is stale at once."""
    db = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    users.create_user(db, "boss@example.com", "manager")
    user = users.create_user(db, "script@example.com", "author")
    token, view = users.create_token(db, user.id)
    cache = users.TokenCache(db)
    assert cache.lookup(token) is not None  # its use is now recorded: lookups only read
    changed = users._accounts_changed

    def change_then_lookup():
        changed()
        cache.lookup(token)  # a concurrent request, right when the process forgets
    monkeypatch.setattr(users, "_accounts_changed", change_then_lookup)

    users.update_user(db, user.id, disabled=True)
    assert cache.get(token) is None
    assert cache.lookup(token) is None
    users.update_user(db, user.id, disabled=False)
    assert cache.lookup(token) is not None
    assert users.revoke_token(db, user.id, view["id"])
    assert cache.get(token) is None
    db.dispose()
