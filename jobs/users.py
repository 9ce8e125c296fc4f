"""Accounts, roles, sign-in sessions and API tokens.

Passwords are hashed with argon2. API tokens and session secrets are 256 random bits;
only their SHA-256 is stored (a fast hash is right for secrets with that much entropy).
A disabled user's sessions and tokens stop working at once: every lookup checks the user
(a web process remembers a token's user for TOKEN_CACHE_SECONDS: see TokenCache).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from jobs.db import reading
from jobs.models import api_tokens, iso, sessions, state, users, utcnow

TOKEN_USE_RESOLUTION = dt.timedelta(minutes=1)  # how precisely a token's last use is kept
# How long a web process answers a token from memory: a token revoked, or a user disabled or
# given another role, by another process takes effect there within this time (at once in
# the process that made the change).
TOKEN_CACHE_SECONDS = 1.0

ROLES = ("manager", "author", "viewer")
TOKEN_PREFIX = "bma_"
MIN_PASSWORD = 12
SESSION_IDLE = dt.timedelta(days=14)  # a session unused this long has ended
SESSION_TOUCH = dt.timedelta(minutes=1)  # last_seen_at is written at most this often
SETUP_KEY = "setup.first_manager"
_hasher = PasswordHasher()


class UserError(ValueError):
    """A request about users that cannot be carried out; the message says why."""


class AlreadySetUp(UserError):
    """The first-run manager exists already."""


@dataclass(frozen=True)
class User:
    id: int
    email: str
    role: str

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"

    @property
    def can_act(self) -> bool:
        return self.role in ("manager", "author")

    def view(self) -> dict:
        return {"id": self.id, "email": self.email, "role": self.role}


def _user(row) -> User:
    return User(row.id, row.email, row.role)


def normalise_email(email: str) -> str:
    """The address in the form we store, or UserError. Syntax only: no network look-ups."""
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise UserError(f"{email.strip()!r} is not an email address: {exc}") from None
    return checked.normalized.lower()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if not password.strip():
        raise UserError("a password cannot be only spaces")
    if len(password) > 200:
        raise UserError("a password can have at most 200 characters")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")


def _new_user(conn, email: str, role: str, password_hash: str | None) -> User:
    return _user(conn.execute(insert(users).values(
        email=email, role=role, created_at=utcnow(), password_hash=password_hash,
    ).returning(users.c.id, users.c.email, users.c.role)).one())


def create_user(db: Engine, email: str, role: str, password: str | None = None) -> User:
    _check_role(role)
    if password is not None:
        check_password(password)
    email = normalise_email(email)
    hashed = _hasher.hash(password) if password else None  # slow: before the transaction
    try:
        with db.begin() as conn:
            return _new_user(conn, email, role, hashed)
    except IntegrityError:
        raise UserError(f"a user with email {email} already exists") from None


def create_first_manager(db: Engine, email: str, password: str) -> User:
    """The first-run manager: exactly one, however many set-up forms arrive together.

    The set-up marker's primary key decides the race; the loser's transaction rolls back."""
    check_password(password)
    email = normalise_email(email)
    hashed = _hasher.hash(password)
    try:
        with db.begin() as conn:
            if conn.execute(select(func.count()).select_from(users)).scalar_one():
                raise AlreadySetUp("the first manager exists already")
            conn.execute(insert(state).values(key=SETUP_KEY, value={"email": email},
                                              updated_at=utcnow()))
            return _new_user(conn, email, "manager", hashed)
    except IntegrityError:  # another set-up committed first
        raise AlreadySetUp("the first manager exists already") from None


def count_users(db: Engine) -> int:
    with reading(db) as conn:
        return conn.execute(select(func.count()).select_from(users)).scalar_one()


_ACCOUNT = (users.c.id, users.c.email, users.c.role, users.c.disabled, users.c.created_at)


def _account_view(row) -> dict:
    return {"id": row.id, "email": row.email, "role": row.role, "disabled": row.disabled,
            "created_at": iso(row.created_at)}


def list_users(db: Engine) -> list[dict]:
    with reading(db) as conn:
        rows = conn.execute(select(*_ACCOUNT).order_by(users.c.id)).all()
    return [_account_view(r) for r in rows]


def get_account(db: Engine, user_id: int) -> dict | None:
    """A user as managers see them, disabled or not."""
    with reading(db) as conn:
        row = conn.execute(select(*_ACCOUNT).where(users.c.id == user_id)).first()
    return _account_view(row) if row else None


def update_user(db: Engine, user_id: int, *, role: str | None = None,
                disabled: bool | None = None) -> tuple[dict, dict] | None:
    """Change a user's role and/or disable or re-enable them: (the user now, what changed),
    or None if there is no such user. Disabling ends their sessions; their tokens stop
    working while they are disabled. The last active manager can be neither demoted nor
    disabled, so that someone can always manage the users."""
    if role is not None:
        _check_role(role)
    with db.begin() as conn:
        row = conn.execute(select(*_ACCOUNT).where(users.c.id == user_id)).first()
        if row is None:
            return None
        changes = {}
        if role is not None and role != row.role:
            changes["role"] = role
        if disabled is not None and disabled != row.disabled:
            changes["disabled"] = disabled
        stops_managing = row.role == "manager" and not row.disabled and (
            changes.get("role", "manager") != "manager" or changes.get("disabled"))
        if stops_managing and conn.execute(
                select(func.count()).select_from(users).where(
                    users.c.role == "manager", users.c.disabled.is_(False),
                    users.c.id != user_id)).scalar_one() == 0:
            raise UserError("this is the last active manager: make someone else a manager first")
        if changes:
            conn.execute(update(users).where(users.c.id == user_id).values(**changes))
        if changes.get("disabled"):
            conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        row = conn.execute(select(*_ACCOUNT).where(users.c.id == user_id)).one()
    if changes:
        # After the commit, not inside it: a token lookup stamps its entry with the count
        # from before its read, so one that read the old user meanwhile goes stale here.
        _accounts_changed()
    return _account_view(row), changes


def set_password(db: Engine, user_id: int, password: str, *,
                 keep_session: str | None = None) -> int | None:
    """A new password; ends the user's sessions except `keep_session` (the one that asked).
    The number of sessions ended, or None if there is no such user."""
    check_password(password)
    hashed = _hasher.hash(password)
    with db.begin() as conn:
        done = conn.execute(update(users).where(users.c.id == user_id)
                            .values(password_hash=hashed))
        if done.rowcount != 1:
            return None
        return _end_sessions(conn, user_id, keep_session)


def change_password(db: Engine, user: User, current: str, new: str,
                    keep_session: str | None) -> int:
    """The user's own change: the current password first. Ends their other sessions."""
    if authenticate(db, user.email, current) is None:
        raise UserError("the current password is not right")
    return set_password(db, user.id, new, keep_session=keep_session) or 0


def new_password() -> str:
    """A password for a reset, to be handed to its user (about 100 bits)."""
    return secrets.token_urlsafe(16)


def authenticate(db: Engine, email: str, password: str) -> User | None:
    with reading(db) as conn:
        row = conn.execute(select(users).where(users.c.email == email.strip().lower(),
                                               users.c.disabled.is_(False))).first()
    if row is None or not row.password_hash:
        _hasher.hash(password)  # same work either way: no timing hint that the email exists
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return _user(row)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- sessions --

def create_session(db: Engine, user_id: int, address: str = "", agent: str = "") -> str:
    """A new sign-in session: its secret, for the cookie (only its digest is stored)."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    with db.begin() as conn:
        conn.execute(insert(sessions).values(user_id=user_id, secret_hash=_digest(secret),
                                             created_at=now, last_seen_at=now,
                                             address=address[:64], agent=agent[:200]))
    return secret


def user_for_session(db: Engine, secret: str) -> User | None:
    """The active user whose live session this is, or None."""
    now = utcnow()
    with reading(db) as conn:
        row = conn.execute(
            select(users.c.id, users.c.email, users.c.role, sessions.c.id.label("session_id"),
                   sessions.c.last_seen_at)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where(sessions.c.secret_hash == _digest(secret), users.c.disabled.is_(False))).first()
    if row is None:
        return None
    if now - row.last_seen_at > SESSION_IDLE:
        with db.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id == row.session_id))
        return None
    if now - row.last_seen_at > SESSION_TOUCH:
        with db.begin() as conn:
            conn.execute(update(sessions).where(sessions.c.id == row.session_id)
                         .values(last_seen_at=now))
    return User(row.id, row.email, row.role)


def end_session(db: Engine, secret: str) -> bool:
    with db.begin() as conn:
        return conn.execute(delete(sessions).where(
            sessions.c.secret_hash == _digest(secret))).rowcount == 1


def end_sessions(db: Engine, user_id: int, keep: str | None = None) -> int:
    """End every session of the user ("sign out everywhere"), except `keep` if given."""
    with db.begin() as conn:
        return _end_sessions(conn, user_id, keep)


def _end_sessions(conn, user_id: int, keep: str | None) -> int:
    query = delete(sessions).where(sessions.c.user_id == user_id)
    if keep is not None:
        query = query.where(sessions.c.secret_hash != _digest(keep))
    return conn.execute(query).rowcount


def list_sessions(db: Engine, user_id: int, current: str | None = None) -> list[dict]:
    mine = _digest(current) if current else None
    with reading(db) as conn:
        rows = conn.execute(select(sessions).where(sessions.c.user_id == user_id)
                            .order_by(sessions.c.last_seen_at.desc())).all()
    return [{"id": r.id, "created_at": iso(r.created_at), "last_seen_at": iso(r.last_seen_at),
             "address": r.address, "agent": r.agent, "current": r.secret_hash == mine}
            for r in rows]


# -- API tokens --


def create_token(db: Engine, user_id: int, name: str = "") -> tuple[str, dict]:
    """A new API token for the user: (the token, shown once; its stored description)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.begin() as conn:
        row = conn.execute(insert(api_tokens).values(
            user_id=user_id, name=name[:100], token_hash=_digest(token), prefix=token[:10],
            created_at=utcnow(),
        ).returning(*api_tokens.c)).one()
    return token, _token_view(row)


def user_for_token(db: Engine, token: str) -> User | None:
    with reading(db) as conn:
        row = conn.execute(
            select(users.c.id, users.c.email, users.c.role, api_tokens.c.id.label("token_id"),
                   api_tokens.c.last_used_at)
            .join(api_tokens, api_tokens.c.user_id == users.c.id)
            .where(api_tokens.c.token_hash == _digest(token), api_tokens.c.revoked_at.is_(None),
                   users.c.disabled.is_(False))).first()
    if row is None:
        return None
    now = utcnow()
    # A read must not cost a write: the token's use is recorded at most once a minute.
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_USE_RESOLUTION:
        with db.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == row.token_id)
                         .values(last_used_at=now))
    return User(row.id, row.email, row.role)


def list_tokens(db: Engine, user_id: int) -> list[dict]:
    with reading(db) as conn:
        rows = conn.execute(select(api_tokens).where(api_tokens.c.user_id == user_id)
                            .order_by(api_tokens.c.id)).all()
    return [_token_view(r) for r in rows]


def revoke_token(db: Engine, user_id: int, token_id: int) -> bool:
    with db.begin() as conn:
        done = conn.execute(update(api_tokens).where(
            api_tokens.c.id == token_id, api_tokens.c.user_id == user_id,
            api_tokens.c.revoked_at.is_(None)).values(revoked_at=utcnow()))
    _accounts_changed()
    return done.rowcount == 1


# -- remembering tokens --

_changes = 0  # bumped by every change of this process that may change a token's user


def _accounts_changed() -> None:
    global _changes
    _changes += 1


class TokenCache:
    """API token -> user, remembered for TOKEN_CACHE_SECONDS: an automation client sends
    the same token with every request, and looking it up is a database read and a thread
    hand-off each time. Only tokens that identified someone are kept (a wrong guess must
    not fill memory); a change of tokens or users made by this process forgets everything
    at once, one made by another process is seen within TOKEN_CACHE_SECONDS. A refresh goes
    through user_for_token, so the token's last use is still recorded."""

    MAX_ENTRIES = 10_000

    def __init__(self, db: Engine, ttl: float = TOKEN_CACHE_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._entries: dict[str, tuple[float, int, User]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> User | None:
        """The token's user if remembered and fresh, else None (then call `lookup`)."""
        entry = self._entries.get(_digest(token))
        if entry is None or entry[1] != _changes or time.monotonic() - entry[0] >= self.ttl:
            return None
        return entry[2]

    def lookup(self, token: str) -> User | None:
        """Read the token's user from the database (blocking) and remember it."""
        changes, started = _changes, time.monotonic()
        user = user_for_token(self.db, token)
        if user is not None:
            with self._lock:
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
                # Stamped with the change count from before the read: a change made during
                # it makes the entry stale at once.
                self._entries[_digest(token)] = (started, changes, user)
        return user


def _token_view(row) -> dict:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "created_at": iso(row.created_at),
            "last_used_at": iso(row.last_used_at), "revoked_at": iso(row.revoked_at)}
