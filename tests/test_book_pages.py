"""The book pages as plain HTML forms (the browser suite drives the rest of the UI)."""
from __future__ import annotations

import re

import httpx


def _signed_in(stack, email: str, role: str = "author") -> httpx.Client:
    stack.create_user(email, role, password="a long password here")
    client = httpx.Client(base_url=stack.base_url, timeout=10)
    response = client.post("/login", data={"email": email, "password": "a long password here"})
    assert response.status_code == 303 or response.status_code == 302
    return client


def test_author_adds_edits_and_deletes_a_book(stack):
    me = _signed_in(stack, f"writer.{stack.name}@example.com")
    bad = me.post("/books", data={"title": "", "tone": "warm"})
    assert bad.status_code == 400 and 'data-error-for="title"' in bad.text
    not_a_link = me.post("/books", data={"title": "Salt", "link": "not a url", "tone": "warm"})
    assert not_a_link.status_code == 400 and "starting with http:// or https://" in not_a_link.text
    added = me.post("/books", data={"title": "<script>alert(1)</script>", "author": "Ann",
                                    "keywords": "sea, salt", "launch_date": "2027-01-02",
                                    "tone": "playful"})
    assert added.status_code == 303
    book_id = int(re.search(r"/books/(\d+)", added.headers["location"]).group(1))
    page = me.get(f"/books/{book_id}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert" not in page.text
    assert 'value="sea, salt"' in page.text

    saved = me.post(f"/books/{book_id}", data={"title": "Salt", "tone": "punchy",
                                                "launch_date": "2027-02-30"})
    assert saved.status_code == 400 and 'data-error-for="launch_date"' in saved.text
    assert me.post(f"/books/{book_id}", data={"title": "Salt", "tone": "punchy"}).status_code == 303
    book = stack.client.get(f"/api/books/{book_id}").json()
    assert (book["title"], book["tone"], book["keywords"]) == ("Salt", "punchy", [])
    assert f'value="{book_id}" selected' in me.get(f"/generate?book_id={book_id}").text

    someone_else = _signed_in(stack, f"other.{stack.name}@example.com")
    assert someone_else.get(f"/books/{book_id}").status_code == 404
    assert someone_else.post(f"/books/{book_id}/delete").status_code == 404
    assert f"/books/{book_id}" not in someone_else.get("/books").text

    asked = me.post(f"/books/{book_id}/delete")  # one click only asks
    assert asked.status_code == 200 and "Yes, delete the book" in asked.text
    assert me.get(f"/books/{book_id}").status_code == 200
    assert me.post(f"/books/{book_id}/delete", data={"confirmed": "yes"}).status_code == 303
    assert me.get(f"/books/{book_id}").status_code == 404


def test_audit_page_is_for_managers(stack):
    author = _signed_in(stack, f"curious.{stack.name}@example.com")
    assert author.get("/audit").status_code == 403
    manager = _signed_in(stack, f"boss.{stack.name}@example.com", role="manager")
    page = manager.get("/audit")
    assert page.status_code == 200 and "user.create" in page.text
