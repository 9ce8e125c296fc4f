"""Book profiles from loose data, posts as dicts, and choosing a writer."""

from __future__ import annotations

import datetime as dt

import pytest

from jobs.writers import Book, Post, Writer, make_writer


def test_book_from_dict_is_tolerant() -> None:
    book = Book.from_dict({
        "title": "  The   Glass Orchard ",
        "author": "Ann Lee",
        "keywords": ["magic", "Magic", " orchards ", ""],
        "comparables": "Piranesi, The Night Circus",
        "launch_date": "2026-03-10",
        "tone": "PUNCHY",
        "blurb": None,
        "unknown": "ignored",
    })
    assert book.title == "The Glass Orchard"
    assert book.keywords == ("magic", "orchards")
    assert book.comparables == ("Piranesi", "The Night Circus")
    assert book.launch_date == dt.date(2026, 3, 10)
    assert book.tone == "punchy" and book.blurb == ""
    assert hash(book)  # frozen and hashable


def test_book_from_dict_dates_and_defaults() -> None:
    assert Book.from_dict({"title": "T", "author": "A", "launch_date": "2026-03-10T08:00:00Z"}).launch_date == dt.date(2026, 3, 10)
    assert Book.from_dict({"title": "T", "author": "A", "launch_date": dt.date(2026, 1, 2)}).launch_date == dt.date(2026, 1, 2)
    plain = Book.from_dict({"title": "T", "author": "A", "launch_date": "", "tone": "grumpy", "keywords": None})
    assert plain.launch_date is None and plain.tone == "warm" and plain.keywords == ()
    with pytest.raises(ValueError, match="launch_date"):
        Book.from_dict({"title": "T", "author": "A", "launch_date": "next spring"})


def test_post_to_dict() -> None:
    post = Post(platform="twitter", text="Hi", length=2, limit=280, writer="offline")
    assert post.to_dict() == {"platform": "twitter", "text": "Hi", "length": 2, "limit": 280,
                              "writer": "offline", "angle": "", "note": ""}


def test_make_writer() -> None:
    offline = make_writer()
    assert offline.name == "offline" and isinstance(offline, Writer)
    llm = make_writer("OpenAI", base_url="http://127.0.0.1:9/v1", api_key="k", model="m", timeout=3)
    assert llm.name == "openai" and isinstance(llm, Writer)
    assert make_writer("anthropic", api_key="k").name == "anthropic"
    with pytest.raises(ValueError, match="expected one of: offline, openai, anthropic"):
        make_writer("bard")
