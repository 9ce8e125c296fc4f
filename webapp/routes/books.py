"""`/api/books`: the book profiles posts are written about."""
from __future__ import annotations

import asyncio

from quart import Blueprint, jsonify, request
from quart_schema import document_request

from jobs import books
from webapp import runtime
from webapp.auth import acting_owner, owner_scope
from webapp.errors import ApiError, load_body
from webapp.schemas import BookCreate, BookIn

bp = Blueprint("books", __name__)


def _not_found(book_id: int) -> ApiError:
    return ApiError(404, "book_not_found", f"no book has id {book_id}")


@bp.get("/api/books")
async def list_books():
    owner = owner_scope() or request.args.get("user_id") or None
    rows = await asyncio.to_thread(books.list_books, runtime().db, owner)
    return jsonify({"books": rows, "count": len(rows)})


@bp.post("/api/books")
@document_request(BookCreate)
async def create_book():
    body = await load_body(BookCreate)
    book = await asyncio.to_thread(books.create_book, runtime().db, acting_owner(body.user_id),
                                   body.model_dump(mode="json", exclude={"user_id"}))
    return jsonify(book), 201


@bp.get("/api/books/<int:book_id>")
async def get_book(book_id: int):
    book = await asyncio.to_thread(books.get_book, runtime().db, book_id, owner_scope())
    if book is None:
        raise _not_found(book_id)
    return jsonify(book)


@bp.put("/api/books/<int:book_id>")
@document_request(BookIn)
async def replace_book(book_id: int):
    body = await load_body(BookIn)
    book = await asyncio.to_thread(books.replace_book, runtime().db, book_id, owner_scope(),
                                   body.model_dump(mode="json"))
    if book is None:
        raise _not_found(book_id)
    return jsonify(book)


@bp.delete("/api/books/<int:book_id>")
async def delete_book(book_id: int):
    if not await asyncio.to_thread(books.delete_book, runtime().db, book_id, owner_scope()):
        raise _not_found(book_id)
    return jsonify({"deleted": book_id})
