"""Accounts, roles and API tokens.

Passwords are hashed with argon2. API tokens are 256 random bits, shown once; only their
SHA-256 is stored (a fast hash is right for secrets with that much entropy).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from jobs.models import api_tokens, users, utcnow

TOKEN_USE_RESOLUTION = dt.timedelta(minutes=1)  # how precisely a token's last use is kept

ROLES = ("manager", "author", "viewer")
TOKEN_PREFIX = "bma_"
_hasher = PasswordHasher()


class UserError(ValueError):
    """A request about users that cannot be carried out; the message says why."""


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
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise UserError(f"{email!r} is not an email address")
    return email


def create_user(db: Engine, email: str, role: str, password: str | None = None) -> User:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if password is not None and len(password) < 8:
        raise UserError("a password needs at least 8 characters")
    email = normalise_email(email)
    try:
        with db.begin() as conn:
            row = conn.execute(insert(users).values(
                email=email, role=role, created_at=utcnow(),
                password_hash=_hasher.hash(password) if password else None,
            ).returning(users.c.id, users.c.email, users.c.role)).one()
    except IntegrityError:
        raise UserError(f"a user with email {email} already exists") from None
    return _user(row)


def count_users(db: Engine) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(users)).scalar_one()


def get_user(db: Engine, user_id: int) -> User | None:
    with db.connect() as conn:
        row = conn.execute(select(users.c.id, users.c.email, users.c.role)
                           .where(users.c.id == user_id, users.c.disabled.is_(False))).first()
    return _user(row) if row else None


def find_user(db: Engine, email_or_id: str) -> User | None:
    with db.connect() as conn:
        query = select(users.c.id, users.c.email, users.c.role).where(users.c.disabled.is_(False))
        if email_or_id.isdigit():
            query = query.where(users.c.id == int(email_or_id))
        else:
            query = query.where(users.c.email == email_or_id.strip().lower())
        row = conn.execute(query).first()
    return _user(row) if row else None


def list_users(db: Engine) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(select(users.c.id, users.c.email, users.c.role, users.c.disabled,
                                   users.c.created_at).order_by(users.c.id)).all()
    return [{"id": r.id, "email": r.email, "role": r.role, "disabled": r.disabled,
             "created_at": r.created_at.isoformat().replace("+00:00", "Z")} for r in rows]


def authenticate(db: Engine, email: str, password: str) -> User | None:
    with db.connect() as conn:
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
    with db.connect() as conn:
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
    with db.connect() as conn:
        rows = conn.execute(select(api_tokens).where(api_tokens.c.user_id == user_id)
                            .order_by(api_tokens.c.id)).all()
    return [_token_view(r) for r in rows]


def revoke_token(db: Engine, user_id: int, token_id: int) -> bool:
    with db.begin() as conn:
        done = conn.execute(update(api_tokens).where(
            api_tokens.c.id == token_id, api_tokens.c.user_id == user_id,
            api_tokens.c.revoked_at.is_(None)).values(revoked_at=utcnow()))
    return done.rowcount == 1


def _token_view(row) -> dict:
    def iso(value):
        return value.isoformat().replace("+00:00", "Z") if value else None
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "created_at": iso(row.created_at),
            "last_used_at": iso(row.last_used_at), "revoked_at": iso(row.revoked_at)}
