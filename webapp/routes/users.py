"""Managers manage users: list, create, change roles, disable and re-enable, reset
passwords; on the Users page and over the API. Every change is audited."""
from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field, StrictBool
from quart import Blueprint, jsonify, render_template, request
from quart_schema import document_request

from jobs import users
from webapp import runtime
from webapp.actions import audit_action
from webapp.auth import current, manager_only
from webapp.confirmation import ask_first, confirmed
from webapp.errors import ApiError, load_body

bp = Blueprint("users", __name__)

ROLE = "^(manager|author|viewer)$"


class NewUser(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    role: str = Field(pattern=ROLE)
    password: str | None = Field(None, max_length=200)


class UserChange(BaseModel):
    role: str | None = Field(None, pattern=ROLE)
    disabled: StrictBool | None = None


class PasswordReset(BaseModel):
    password: str | None = Field(None, max_length=200)  # none: one is made up and returned


def _not_found(user_id: int) -> ApiError:
    return ApiError(404, "user_not_found", f"no user has id {user_id}")


async def _create(email: str, role: str, password: str | None) -> users.User:
    user = await asyncio.to_thread(users.create_user, runtime().db, email, role, password)
    await audit_action("user.create", user.email, {"role": user.role})
    return user


async def _change(user_id: int, *, role: str | None = None, disabled: bool | None = None) -> dict:
    """Apply and audit a change (one entry per kind); raises UserError or the 404."""
    if user_id == current().id and disabled:
        raise users.UserError("you cannot disable yourself")
    result = await asyncio.to_thread(users.update_user, runtime().db, user_id, role=role,
                                     disabled=disabled)
    if result is None:
        raise _not_found(user_id)
    account, changes = result
    if "role" in changes:
        await audit_action("user.role", account["email"], {"role": changes["role"]})
    if "disabled" in changes:
        await audit_action("user.disable" if changes["disabled"] else "user.enable", account["email"])
    return account


async def _reset_password(user_id: int, password: str | None) -> tuple[dict, str, int]:
    """(the user, the new password, sessions ended); raises UserError or the 404."""
    db = runtime().db
    account = await asyncio.to_thread(users.get_account, db, user_id)
    if account is None:
        raise _not_found(user_id)
    password = password or users.new_password()
    ended = await asyncio.to_thread(users.set_password, db, user_id, password)
    await audit_action("user.password_reset", account["email"], {"sessions_ended": ended})
    return account, password, ended


# -- the page --

async def _page(status: int = 200, **shown):
    accounts = await asyncio.to_thread(users.list_users, runtime().db)
    context = {"error": None, "notice": None, "new_password": None, "form": {}, **shown}
    return await render_template("users.html", accounts=accounts, **context), status


@bp.get("/users")
@manager_only
async def users_page():
    return await _page()


@bp.post("/users")
@manager_only
async def users_create():
    form = await request.form
    password = form.get("password") or None
    try:
        user = await _create(form.get("email", ""), form.get("role", ""), password)
    except users.UserError as exc:
        return await _page(400, error=f"{str(exc).capitalize()}.", form=form.to_dict())
    return await _page(notice=f"{user.email} can now sign in as {user.role}."
                       if password else f"{user.email} was added as {user.role}; "
                       "set a password for them below before they can sign in.")


@bp.post("/users/<int:user_id>")
@manager_only
async def users_update(user_id: int):
    """One button per change: `action` is role (with `role`), disable, enable or password."""
    form = await request.form
    action = form.get("action", "")
    ask = await _ask_first(user_id, action, form)
    if ask is not None:
        return ask
    try:
        if action == "role":
            account = await _change(user_id, role=form.get("role", ""))
            return await _page(notice=f"{account['email']} is now {account['role']}.")
        if action in ("disable", "enable"):
            account = await _change(user_id, disabled=action == "disable")
            return await _page(notice=f"{account['email']} is {action}d.")
        if action == "password":
            account, password, ended = await _reset_password(user_id, form.get("password") or None)
            return await _page(new_password={"email": account["email"], "password": password,
                                              "generated": not form.get("password"),
                                              "sessions_ended": ended})
    except users.UserError as exc:
        return await _page(400, error=f"{str(exc).capitalize()}.")
    raise ApiError(400, "unknown_action", "choose role, disable, enable or password")


QUESTIONS = {  # what each destructive change asks first: (question, detail, button)
    "role": ("Make {email} {role}?", "What they can see and do changes at once.",
             "Yes, make them {role}"),
    "disable": ("Disable {email}?", "Their sessions end and their API tokens stop working "
                "until you re-enable them.", "Yes, disable them"),
    "password": ("Reset the password of {email}?", "Their sessions end; the new password is "
                 "shown to you once.", "Yes, reset it"),
}


async def _ask_first(user_id: int, action: str, form):
    """The confirmation page for a destructive change not confirmed yet (no JavaScript)."""
    if action not in QUESTIONS or confirmed(form):
        return None
    account = await asyncio.to_thread(users.get_account, runtime().db, user_id)
    if account is None:
        raise _not_found(user_id)
    words = {"email": account["email"], "role": form.get("role", "")}
    question, detail, button = (text.format(**words) for text in QUESTIONS[action])
    return await ask_first(form, action=f"/users/{user_id}", question=question, detail=detail,
                           button=button, cancel="/users", keep=("action", "role", "password"))


# -- JSON --

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
        user = await _create(body.email, body.role, body.password)
    except users.UserError as exc:
        raise ApiError(409 if "exists" in str(exc) else 400, "invalid_user", str(exc)) from None
    return jsonify(user.view()), 201


@bp.get("/api/users/<int:user_id>")
@manager_only
async def get_user(user_id: int):
    account = await asyncio.to_thread(users.get_account, runtime().db, user_id)
    if account is None:
        raise _not_found(user_id)
    return jsonify(account)


@bp.patch("/api/users/<int:user_id>")
@manager_only
@document_request(UserChange)
async def update_user(user_id: int):
    """Change the role and/or disable (`"disabled": true`) or re-enable a user. A disabled
    user's sessions end and their API tokens stop working until they are re-enabled."""
    body = await load_body(UserChange)
    try:
        return jsonify(await _change(user_id, role=body.role, disabled=body.disabled))
    except users.UserError as exc:
        raise ApiError(409, "user_unchangeable", str(exc)) from None


@bp.post("/api/users/<int:user_id>/password")
@manager_only
@document_request(PasswordReset)
async def reset_password(user_id: int):
    """Set a new password (made up and returned when none is sent); the user's sessions end."""
    body = await load_body(PasswordReset, optional=True)
    try:
        account, password, ended = await _reset_password(user_id, body.password)
    except users.UserError as exc:
        raise ApiError(400, "invalid_password", str(exc)) from None
    return jsonify({"user": account, "password": password, "sessions_ended": ended})
