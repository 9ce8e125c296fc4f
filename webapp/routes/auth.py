"""Signing in and out, the first-run setup, API tokens, users and the audit log."""
from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field
from quart import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from quart_auth import logout_user
from quart_schema import document_request

from jobs import audit, users
from webapp import runtime
from webapp.auth import any_signed_in_user, current, manager_only, public, sign_in
from webapp.errors import ApiError, load_body

bp = Blueprint("auth", __name__)

LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW = 300


class NewUser(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    role: str = Field(pattern="^(manager|author|viewer)$")
    password: str | None = Field(None, min_length=8, max_length=200)


class NewToken(BaseModel):
    name: str = Field("", max_length=100)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("pages.home")


async def _audit(action: str, target: str | None, detail: dict | None = None) -> None:
    await asyncio.to_thread(audit.record, runtime().db, current().email, action, target, detail)


@bp.get("/login")
@public
async def login():
    return await render_template("login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
@public
async def login_post():
    form = await request.form
    email, password = form.get("email", "").strip().lower(), form.get("password", "")
    limiter = current_app.extensions["limiter"]
    key = f"login:{email}:{request.remote_addr}"
    db = runtime().db
    user = await asyncio.to_thread(users.authenticate, db, email, password) if email else None
    if user is None:
        wait = await limiter.hit(key, LOGIN_FAILURES_ALLOWED, LOGIN_WINDOW)
        status, error = 401, "That email and password do not match an account."
        if wait is not None:
            status, error = 429, f"Too many failed attempts; try again in {int(wait)} seconds."
        page = await render_template("login.html", next=form.get("next", ""), error=error, email=email)
        headers = {"Retry-After": str(int(wait))} if wait is not None else {}
        return page, status, headers
    sign_in(user)
    return redirect(_safe_next(form.get("next")))


@bp.post("/logout")
@any_signed_in_user
async def logout():
    logout_user()
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
    form = await request.form
    if await asyncio.to_thread(users.count_users, db):
        return redirect(url_for("auth.login"))  # someone finished the setup first
    try:
        user = await asyncio.to_thread(users.create_user, db, form.get("email", ""), "manager",
                                       form.get("password", ""))
    except users.UserError as exc:
        return await render_template("setup.html", error=str(exc), email=form.get("email", "")), 400
    await asyncio.to_thread(audit.record, db, user.email, "user.create", user.email,
                            {"role": "manager", "via": "first-run setup"})
    sign_in(user)
    return redirect(url_for("pages.home"))


@bp.get("/healthz")
@public
async def healthz():
    """For load balancers: ok when the database answers, nothing more."""
    from webapp.health import database_ok
    ok = await asyncio.to_thread(database_ok, runtime())
    return ("ok\n" if ok else "not ok\n"), (200 if ok else 503), {"Content-Type": "text/plain"}


@bp.get("/account")
async def account():
    tokens = await asyncio.to_thread(users.list_tokens, runtime().db, current().id)
    return await render_template("account.html", tokens=tokens, new_token=None,
                                 feed_url=await _calendar_url())


@bp.post("/account/tokens")
@any_signed_in_user
async def account_new_token():
    form = await request.form
    token, _ = await asyncio.to_thread(users.create_token, runtime().db, current().id,
                                       form.get("name", "")[:100])
    await _audit("token.create", current().email, {"name": form.get("name", "")[:100]})
    tokens = await asyncio.to_thread(users.list_tokens, runtime().db, current().id)
    return await render_template("account.html", tokens=tokens, new_token=token,
                                 feed_url=await _calendar_url())


@bp.post("/account/tokens/<int:token_id>/revoke")
@any_signed_in_user
async def account_revoke_token(token_id: int):
    if (await request.form).get("confirmed") != "yes":  # scripts using it would stop working
        return await render_template(
            "confirm.html", action=f"/account/tokens/{token_id}/revoke", question="Revoke this token?",
            detail="Anything that uses it (scripts, automation) is refused from then on.",
            button="Yes, revoke it", fields={}, cancel="/account")
    if await asyncio.to_thread(users.revoke_token, runtime().db, current().id, token_id):
        await _audit("token.revoke", current().email, {"token_id": token_id})
    return redirect(url_for("auth.account"))


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
    await _audit("token.create", current().email, {"name": body.name})
    return jsonify({**view, "token": token}), 201


@bp.delete("/api/tokens/<int:token_id>")
@any_signed_in_user
async def revoke_token(token_id: int):
    if not await asyncio.to_thread(users.revoke_token, runtime().db, current().id, token_id):
        raise ApiError(404, "token_not_found", f"you have no active token {token_id}")
    await _audit("token.revoke", current().email, {"token_id": token_id})
    return jsonify({"revoked": token_id})


@bp.get("/api/users")
@manager_only
async def list_users():
    return jsonify({"users": await asyncio.to_thread(users.list_users, runtime().db)})


@bp.post("/api/users")
@manager_only
@document_request(NewUser)
async def create_user():
    body = await load_body(NewUser)
    try:
        user = await asyncio.to_thread(users.create_user, runtime().db, body.email, body.role,
                                       body.password)
    except users.UserError as exc:
        raise ApiError(409 if "exists" in str(exc) else 400, "invalid_user", str(exc)) from None
    await _audit("user.create", user.email, {"role": user.role})
    return jsonify(user.view()), 201


@bp.get("/api/audit")
@manager_only
async def audit_log():
    return jsonify({"entries": await asyncio.to_thread(audit.recent, runtime().db)})
