"""Signing in and out, the first-run setup, your account (password, sessions, API tokens)
and the audit log. Managing other users is in routes/users.py."""
from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field
from quart import Blueprint, Response, current_app, jsonify, redirect, render_template, request, url_for
from quart_schema import document_request

from jobs import audit, users
from webapp import runtime
from webapp.actions import audit_action
from webapp.auth import (any_signed_in_user, cross_site_refusal, current, local_path, manager_only,
                         public, same_site, session_secret, sign_in, sign_out)
from webapp.confirmation import ask_first
from webapp.errors import ApiError, load_body
from webapp.limits import Hit
from webapp.view_helpers import seconds_text

bp = Blueprint("auth", __name__)


class NewToken(BaseModel):
    name: str = Field("", max_length=100)


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=200)
    new_password: str = Field(max_length=200)



async def _posted_form():
    """A public form's fields, refused if another site posted it (login CSRF)."""
    form = await request.form
    if not same_site():
        raise cross_site_refusal()
    return form


@bp.get("/login")
@public
async def login():
    return await render_template("login.html", next=request.args.get("next", ""), error=None)


async def _login_throttled(email: str) -> tuple[list[Hit], int | None]:
    """Count this attempt against the account and the address before any password is
    checked: while either is over its limit the answer is 429, whatever the password (and
    the attempt is counted against neither). The hits, and seconds to wait or None."""
    hits = await current_app.extensions["limiter"].hit_all(_login_keys(email),
                                                           runtime().settings.login_window)
    return hits, max((h.retry_after for h in hits if h.refused), default=None)


def _login_keys(email: str) -> list[tuple[str, int]]:
    settings = runtime().settings
    return [(f"login:account:{email}", settings.login_attempts_per_account),
            (f"login:address:{request.remote_addr}", settings.login_attempts_per_address)]


@bp.post("/login")
@public
async def login_post():
    form = await _posted_form()
    email, password = form.get("email", "").strip().lower(), form.get("password", "")
    db = runtime().db
    hits, wait = await _login_throttled(email)
    user = None
    if wait is None and email:
        user = await asyncio.to_thread(users.authenticate, db, email, password)
    if user is None:
        status, error, headers = 401, "That email and password do not match an account.", {}
        if wait is not None:
            status, headers = 429, {"Retry-After": str(wait)}
            error = f"Too many sign-in attempts; try again in {seconds_text(wait)}."
        page = await render_template("login.html", next=form.get("next", ""), error=error, email=email)
        return page, status, headers
    # A successful sign-in is not an attempt to guess: hand back exactly what it counted.
    await current_app.extensions["limiter"].forgive(*hits)
    await sign_in(db, user)
    return redirect(local_path(form.get("next"), url_for("pages.home")))


@bp.post("/logout")
@any_signed_in_user
async def logout():
    await sign_out(runtime().db)
    await audit_action("session.end", current().email)
    return redirect(url_for("auth.login"))


@bp.get("/setup")
@public
async def setup():
    if await asyncio.to_thread(users.count_users, runtime().db):
        return redirect(url_for("auth.login"))
    return await render_template("setup.html", error=None)


@bp.post("/setup")
@public
async def setup_post():
    db = runtime().db
    form = await _posted_form()
    try:
        user = await asyncio.to_thread(users.create_first_manager, db, form.get("email", ""),
                                       form.get("password", ""))
    except users.AlreadySetUp:
        return redirect(url_for("auth.login"))  # someone finished the setup first
    except users.UserError as exc:
        return await render_template("setup.html", error=str(exc), email=form.get("email", "")), 400
    await asyncio.to_thread(audit.record, db, user.email, "user.create", user.email,
                            {"role": "manager", "via": "first-run setup"})
    await sign_in(db, user)
    return redirect(url_for("pages.home"))


@bp.get("/healthz")
@public
async def healthz():
    """For load balancers: ok when the database answers, nothing more."""
    from webapp.health import database_ok
    ok = await asyncio.to_thread(database_ok, runtime())
    # A Response, not (body, status, headers): a headers dict would be converted through
    # pydantic by quart-schema on every call (a TypeAdapter built per response).
    return Response("ok\n" if ok else "not ok\n", 200 if ok else 503, content_type="text/plain")


async def _account_page(status: int = 200, **shown):
    db, user = runtime().db, current()
    tokens, sessions = await asyncio.gather(
        asyncio.to_thread(users.list_tokens, db, user.id),
        asyncio.to_thread(users.list_sessions, db, user.id, session_secret()))
    context = {"new_token": None, "password_error": None, "password_changed": False, **shown}
    return await render_template("account.html", tokens=tokens, sessions=sessions,
                                 feed_url=await _calendar_url(), **context), status


@bp.get("/account")
async def account():
    return await _account_page()


@bp.post("/account/tokens")
@any_signed_in_user
async def account_new_token():
    form = await request.form
    token, _ = await asyncio.to_thread(users.create_token, runtime().db, current().id,
                                       form.get("name", "")[:100])
    await audit_action("token.create", current().email, {"name": form.get("name", "")[:100]})
    return await _account_page(new_token=token)


@bp.post("/account/tokens/<int:token_id>/revoke")
@any_signed_in_user
async def account_revoke_token(token_id: int):
    ask = await ask_first(  # scripts using it would stop working
        await request.form, action=f"/account/tokens/{token_id}/revoke",
        question="Revoke this token?", button="Yes, revoke it", cancel="/account",
        detail="Anything that uses it (scripts, automation) is refused from then on.")
    if ask is not None:
        return ask
    if await asyncio.to_thread(users.revoke_token, runtime().db, current().id, token_id):
        await audit_action("token.revoke", current().email, {"token_id": token_id})
    return redirect(url_for("auth.account"), 303)


async def _change_password(current_password: str, new_password: str) -> int:
    """Change the signed-in user's password; their other sessions end. Sessions ended."""
    ended = await asyncio.to_thread(users.change_password, runtime().db, current(),
                                    current_password, new_password, session_secret())
    await audit_action("password.change", current().email, {"sessions_ended": ended})
    return ended


@bp.post("/account/password")
@any_signed_in_user
async def account_password():
    form = await request.form
    if form.get("new_password", "") != form.get("repeat_password", ""):
        return await _account_page(400, password_error="The two new passwords differ.")
    try:
        await _change_password(form.get("current_password", ""), form.get("new_password", ""))
    except users.UserError as exc:
        return await _account_page(400, password_error=f"{str(exc).capitalize()}.")
    return await _account_page(password_changed=True)


async def _end_all_sessions() -> int:
    ended = await asyncio.to_thread(users.end_sessions, runtime().db, current().id)
    await audit_action("session.end_all", current().email, {"sessions_ended": ended})
    return ended


@bp.post("/account/sessions/end")
@any_signed_in_user
async def account_end_sessions():
    """Sign out everywhere, this browser included."""
    ask = await ask_first(await request.form, action="/account/sessions/end",
                          question="Sign out of every browser?", button="Yes, sign out everywhere",
                          detail="This browser too: you sign in again afterwards.",
                          cancel="/account")
    if ask is not None:
        return ask
    await _end_all_sessions()
    await sign_out(runtime().db)
    return redirect(url_for("auth.login"), 303)


@bp.get("/audit")
@manager_only
async def audit_page():
    entries = await asyncio.to_thread(audit.recent, runtime().db)
    return await render_template("audit.html", entries=entries)


# -- JSON --

@bp.get("/api/me")
async def me():
    return jsonify({**current().view(), "calendar_url": await _calendar_url()})


async def _calendar_url() -> str:
    from webapp.routes.posts import calendar_url  # the posts blueprint owns the feed
    return await calendar_url()


@bp.get("/api/tokens")
async def list_tokens():
    return jsonify({"tokens": await asyncio.to_thread(users.list_tokens, runtime().db, current().id)})


@bp.post("/api/tokens")
@any_signed_in_user
@document_request(NewToken)
async def create_token():
    body = await load_body(NewToken, optional=True)
    token, view = await asyncio.to_thread(users.create_token, runtime().db, current().id, body.name)
    await audit_action("token.create", current().email, {"name": body.name})
    return jsonify({**view, "token": token}), 201


@bp.delete("/api/tokens/<int:token_id>")
@any_signed_in_user
async def revoke_token(token_id: int):
    if not await asyncio.to_thread(users.revoke_token, runtime().db, current().id, token_id):
        raise ApiError(404, "token_not_found", f"you have no active token {token_id}")
    await audit_action("token.revoke", current().email, {"token_id": token_id})
    return jsonify({"revoked": token_id})


@bp.get("/api/me/sessions")
async def my_sessions():
    sessions = await asyncio.to_thread(users.list_sessions, runtime().db, current().id,
                                       session_secret())
    return jsonify({"sessions": sessions})


@bp.delete("/api/me/sessions")
@any_signed_in_user
async def end_my_sessions():
    """Sign out everywhere: every browser session of this user ends (API tokens do not)."""
    return jsonify({"sessions_ended": await _end_all_sessions()})


@bp.post("/api/me/password")
@any_signed_in_user
@document_request(PasswordChange)
async def change_my_password():
    body = await load_body(PasswordChange)
    try:
        ended = await _change_password(body.current_password, body.new_password)
    except users.UserError as exc:
        raise ApiError(400, "invalid_password", str(exc)) from None
    return jsonify({"changed": True, "sessions_ended": ended})


@bp.get("/api/audit")
@manager_only
async def audit_log():
    return jsonify({"entries": await asyncio.to_thread(audit.recent, runtime().db)})
