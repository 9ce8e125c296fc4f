"""The book pages: an author's books, added, edited and removed with plain forms."""
from __future__ import annotations

import asyncio

from pydantic import ValidationError
from quart import Blueprint, abort, redirect, render_template, request

from jobs import books
from jobs.posts import draft_plans
from webapp import runtime
from webapp.auth import current, owner_scope
from webapp.confirmation import confirmed
from webapp.schemas import BookIn

bp = Blueprint("library", __name__)

LIST_FIELDS = ("keywords", "comparables")
# What to say when a field is refused, in the words of the form.
_MESSAGES = {
    "title": "Enter the book's title (up to 300 characters).",
    "launch_date": "Enter a real date, such as 2027-03-01.",
    "tone": "Choose one of the tones offered.",
    "keywords": "At most 30 keywords, each up to 300 characters, separated by commas.",
    "comparables": "At most 20 comparable titles, separated by commas.",
    "blurb": "The blurb can be up to 5,000 characters.",
    "link": "Enter a web address starting with http:// or https:// (up to 2,000 characters).",
}


def _values(form) -> dict:
    """Form fields as BookIn expects them: lists from comma-separated text, blanks unset."""
    values = {}
    for field in BookIn.model_fields:
        raw = form.get(field, "").strip()
        if field in LIST_FIELDS:
            values[field] = [part.strip() for part in raw.split(",") if part.strip()]
        elif raw or field == "title":
            values[field] = raw
    return values


def _parse(form) -> tuple[dict | None, dict, dict]:
    """(fields for the store, or None; errors by field; what to show back in the form)."""
    shown = {f: form.get(f, "") for f in BookIn.model_fields}
    try:
        book = BookIn.model_validate(_values(form))
    except ValidationError as exc:
        return None, {str(e["loc"][0]): _MESSAGES.get(str(e["loc"][0]), e["msg"])
                      for e in exc.errors()}, shown
    return book.model_dump(mode="json"), {}, shown


def _shown(book: dict) -> dict:
    return {f: ", ".join(book[f]) if f in LIST_FIELDS else (book[f] or "") for f in BookIn.model_fields}


async def _my_books() -> list[dict]:
    return await asyncio.to_thread(books.list_books, runtime().db, owner_scope(), 200)


@bp.get("/books")
async def book_list():
    return await render_template("books.html", books=await _my_books(), errors={}, values={})


@bp.post("/books")
async def book_create():
    fields, errors, shown = _parse(await request.form)
    if fields is None:
        return await render_template("books.html", books=await _my_books(), errors=errors,
                                     values=shown), 400
    book = await asyncio.to_thread(books.create_book, runtime().db, current().email, fields)
    return redirect(f"/books/{book['id']}?saved=1", 303)


@bp.get("/books/<int:book_id>")
async def book_edit(book_id: int):
    book = await asyncio.to_thread(books.get_book, runtime().db, book_id, owner_scope())
    if book is None:
        abort(404)
    plans = await asyncio.to_thread(draft_plans, runtime().db, owner_scope(), book_id=book_id)
    return await render_template("book.html", book=book, values=_shown(book), errors={},
                                 saved=request.args.get("saved") == "1", plans=plans,
                                 approved=request.args.get("approved"))


@bp.post("/books/<int:book_id>")
async def book_update(book_id: int):
    db = runtime().db
    book = await asyncio.to_thread(books.get_book, db, book_id, owner_scope())
    if book is None:
        abort(404)
    fields, errors, shown = _parse(await request.form)
    if fields is None:
        return await render_template("book.html", book=book, values=shown, errors=errors,
                                     saved=False), 400
    await asyncio.to_thread(books.replace_book, db, book_id, owner_scope(), fields)
    return redirect(f"/books/{book_id}?saved=1", 303)


@bp.post("/books/<int:book_id>/delete")
async def book_delete(book_id: int):
    db = runtime().db
    if not confirmed(await request.form):  # one click must not lose a book
        book = await asyncio.to_thread(books.get_book, db, book_id, owner_scope())
        if book is None:
            abort(404)
        return await render_template(
            "confirm.html", action=f"/books/{book_id}/delete", question=f"Delete “{book['title']}”?",
            detail="The book's profile is removed; its posts stay, no longer linked to it.",
            button="Yes, delete the book", fields={}, cancel=f"/books/{book_id}")
    if not await asyncio.to_thread(books.delete_book, db, book_id, owner_scope()):
        abort(404)
    return redirect("/books", 303)
