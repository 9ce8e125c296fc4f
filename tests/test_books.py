"""Book profiles over JSON, and which book a generation request writes about."""
from __future__ import annotations

import pytest


def test_book_crud(stack):
    created = stack.add_book("author-crud", title="Salt and Iron", tone="punchy",
                             launch_date="2027-03-01", comparables=["The Terror"])
    assert created["id"] >= 1 and created["title"] == "Salt and Iron"
    assert stack.client.get(f"/api/books/{created['id']}").json()["launch_date"] == "2027-03-01"
    listed = stack.client.get("/api/books", params={"user_id": "author-crud"}).json()
    assert [b["id"] for b in listed["books"]] == [created["id"]]

    replaced = stack.client.put(f"/api/books/{created['id']}", json={"title": "Salt, Iron"})
    assert replaced.status_code == 200 and replaced.json()["title"] == "Salt, Iron"
    assert replaced.json()["tone"] == "warm"  # PUT replaces the whole profile

    assert stack.client.delete(f"/api/books/{created['id']}").status_code == 200
    for response in (stack.client.get(f"/api/books/{created['id']}"),
                     stack.client.delete(f"/api/books/{created['id']}"),
                     stack.client.put(f"/api/books/{created['id']}", json={"title": "x"})):
        assert response.status_code == 404
        assert response.json()["error"] == "book_not_found"


@pytest.mark.parametrize("body, field", [
    ({"title": ""}, "title"),
    ({"title": "x", "tone": "grumpy"}, "tone"),
    ({"title": "x", "launch_date": "2026-02-31"}, "launch_date"),
    ({"title": "x", "keywords": "one, two"}, "keywords"),
    ({"title": "x", "isbn": "123"}, "isbn"),
])
def test_bad_books_are_400(stack, body, field):
    response = stack.client.post("/api/books", json=body)
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_generation_uses_the_named_book_or_the_latest(stack):
    older = stack.add_book("author-two", title="First Light")
    newer = stack.add_book("author-two", title="Second Tide")
    latest = stack.client.post("/api/generate-posts", json={
        "user_id": "author-two", "platforms": ["twitter"], "count_per_platform": 1}).json()
    assert "Second Tide" in latest["posts"][0]["text"]
    named = stack.client.post("/api/generate-posts", json={
        "user_id": "author-two", "book_id": older["id"], "platforms": ["twitter"],
        "count_per_platform": 1}).json()
    assert "First Light" in named["posts"][0]["text"]
    task_id = stack.queue(user_id="author-two", book_id=newer["id"], platforms=["bluesky"],
                          count_per_platform=1)
    stack.wait_status(task_id, "SUCCESS")
    posts = stack.client.get(f"/api/tasks/{task_id}/posts").json()["posts"]
    assert posts[0]["book_id"] == newer["id"]


def test_generation_without_any_book_says_to_create_one(stack):
    response = stack.client.post("/api/generate-posts", json={
        "user_id": "nobody-yet", "platforms": ["twitter"], "count_per_platform": 1})
    assert response.status_code == 400
    assert response.json()["error"] == "no_book"
    assert "create a book first" in response.json()["message"]


def test_another_users_book_is_not_found(stack):
    theirs = stack.add_book("author-three")
    response = stack.client.post("/api/generate-posts", json={
        "user_id": "author-four", "book_id": theirs["id"], "platforms": ["twitter"]})
    assert response.status_code == 404
    assert response.json()["error"] == "book_not_found"
