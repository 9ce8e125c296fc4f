"""Who is asking, and may they? Every route is protected unless marked public.

Identity comes from an API token (`Authorization: Bearer ...`) or the session cookie
(quart-auth), which carries the secret of a server-side session (jobs.users): signing out,
"sign out everywhere", a password change or disabling the user ends it at once. The rules:
anonymous requests get 401 (JSON) or a redirect to the login page; viewers may only read;
routes marked `manager_only` need a manager; authors see and act on their own work only
(`owner_scope`). State-changing requests carried by a cookie must
come from our own pages (Sec-Fetch-Site / Origin), so another site cannot forge them.
"""
from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from quart import Quart, g, redirect, request, url_for
from quart_auth import AuthUser, QuartAuth, login_user, logout_user

from jobs import users
from jobs.users import User
from webapp.errors import ApiError, wants_json

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_ENDPOINTS = {"static", "openapi", "swagger_ui"}


def public(view: Callable) -> Callable:
    view._public = True
    return view


def manager_only(view: Callable) -> Callable:
    view._manager_only = True
    return view


def metrics_reader(view: Callable) -> Callable:
    """For managers, or for a scraper holding the METRICS_TOKEN (a bearer token of its own)."""
    view._manager_only = True
    view._metrics_token = True
    return view


def any_signed_in_user(view: Callable) -> Callable:
    """A state-changing route a viewer may use too (their own session and tokens)."""
    view._any_role = True
    return view


def current() -> User:
    """The signed-in user; the guard has already refused anonymous requests."""
    return g.user


def owner_scope() -> str | None:
    """The owner whose work this user may see, or None for everything."""
    user = current()
    return None if user.role in ("manager", "viewer") else user.email


def owner_filter(requested: str | None, what: str) -> str | None:
    """Whose `what` a list shows: an author only their own (asking for anyone else's is
    refused, not quietly narrowed), managers and viewers anyone's (`owner=`), or everyone's."""
    scope = owner_scope()
    if scope is None:
        return requested or None
    if requested and requested != scope:
        raise ApiError(403, "forbidden", f"authors see their own {what} only: leave owner out")
    return scope


def acting_owner(requested: str | None) -> str:
    """The owner a request acts for: an author only for themselves, a manager for anyone."""
    return owner_for(current(), requested)


def owner_for(user: User, requested: str | None) -> str:
    """acting_owner for a given user."""
    if requested is None or requested in (user.email, str(user.id)):
        return user.email
    if not user.is_manager:
        raise ApiError(403, "forbidden", "authors may only act for themselves: leave user_id "
                                         "out or set it to your own email",
                       fields={"user_id": "not yours"})
    return requested


def can_see(owner: str) -> bool:
    scope = owner_scope()
    return scope is None or scope == owner


class _SessionAuth(QuartAuth):
    async def after_request(self, response):
        # Secure cookies when (and only when) the request came over HTTPS.
        self.cookie_secure = request.is_secure
        return await super().after_request(response)


def init_auth(app: Quart, db, data_dir: Path, secret_key: str | None,
              metrics_token: str | None = None) -> None:
    app.secret_key = secret_key or _local_secret(data_dir)
    app.config["QUART_AUTH_COOKIE_NAME"] = "bma_session"
    app.config["QUART_AUTH_DURATION"] = 14 * 24 * 3600
    auth = _SessionAuth(app)
    tokens = users.TokenCache(db)

    @app.before_request
    async def _guard():
        view = app.view_functions.get(request.endpoint) if request.endpoint else None
        if view is None or request.endpoint in PUBLIC_ENDPOINTS or getattr(view, "_public", False):
            return None
        if getattr(view, "_metrics_token", False) and metrics_token and hmac.compare_digest(
                _bearer().encode(), metrics_token.encode()):
            return None
        g.user, g.session_secret = await _identify(auth, db, tokens)
        by_cookie = g.session_secret is not None
        if g.user is None:
            refusal = await _refuse_anonymous(db)
        elif request.method not in SAFE_METHODS and by_cookie and not same_site():
            refusal = cross_site_refusal()
        else:
            refusal = role_refusal(view, g.user, request.method)
        if refusal is None:
            return None
        # Read the (size-capped) body first: a reply sent over an unread body leaves a
        # kept-alive connection out of step, and the client's next request on it fails.
        await request.get_data()
        if isinstance(refusal, ApiError):
            raise refusal
        return refusal

    app.extensions["tokens"] = tokens

    @app.context_processor
    def _user_in_templates():
        return {"user": getattr(g, "user", None)}


def role_refusal(view: Callable, user: User, method: str) -> ApiError | None:
    """Why `user` may not call `view` with `method`, or None when they may."""
    if method not in SAFE_METHODS and not user.can_act and not getattr(view, "_any_role", False):
        return ApiError(403, "forbidden", "viewers can watch but not change anything")
    if getattr(view, "_manager_only", False) and not user.is_manager:
        return ApiError(403, "forbidden", "only a manager may do this")
    return None


async def _identify(auth: QuartAuth, db, tokens: users.TokenCache) -> tuple[User | None, str | None]:
    """(the user, the session secret when the cookie identified them)."""
    token = _bearer()
    if token:
        return tokens.get(token) or await asyncio.to_thread(tokens.lookup, token), None
    secret = auth.load_user().auth_id
    if not secret:
        return None, None
    user = await asyncio.to_thread(users.user_for_session, db, secret)
    return user, secret if user is not None else None


def _bearer() -> str:
    return bearer_token(request.headers.get("Authorization", ""))


def bearer_token(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, or ""."""
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def session_secret() -> str | None:
    """The secret of the session this request came with, if it came with a cookie."""
    return g.get("session_secret")


async def _refuse_anonymous(db) -> ApiError | object:
    """The 401 to raise (JSON), or the redirect to answer (pages)."""
    first_run = await asyncio.to_thread(users.count_users, db) == 0
    if wants_json():
        message = ("no account exists yet: create the first manager at /setup or with "
                   "`python -m webapp create-user`" if first_run else
                   "sign in at /login, or send an API token as 'Authorization: Bearer <token>'")
        return ApiError(401, "unauthorized", message)
    if first_run:
        return redirect(url_for("auth.setup"))
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def cross_site_refusal() -> ApiError:
    return ApiError(403, "cross_site_request",
                    "state-changing requests must come from this site's own pages")


def same_site() -> bool:
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return True  # not a browser: browsers send one of these on cross-site requests
    return urlsplit(origin).netloc == request.host


def local_path(target: str | None, default: str) -> str:
    """`target` if it is a path on this site, else `default`: the only redirect targets taken
    from a request. Browsers read `/\\host`, `/<tab>/host` and the like as other sites, so
    anything but printable, unambiguous path characters is refused."""
    if (not target or not target.startswith("/") or target.startswith("//")
            or any(c == "\\" or c.isspace() or not c.isprintable() for c in target)):
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


async def sign_in(db, user: User) -> None:
    """Start a server-side session for `user` and hand its secret to the browser."""
    secret = await asyncio.to_thread(users.create_session, db, user.id, request.remote_addr or "",
                                     request.headers.get("User-Agent", ""))
    login_user(AuthUser(secret))


async def sign_out(db) -> None:
    """End this request's session (server side first) and clear the cookie."""
    secret = session_secret()
    if secret is not None:
        await asyncio.to_thread(users.end_session, db, secret)
    logout_user()


def _local_secret(data_dir: Path) -> str:
    """A signing key kept in the data folder; several web machines need SECRET_KEY instead."""
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()
