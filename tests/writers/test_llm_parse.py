"""The tolerant reader of LLM replies."""

from __future__ import annotations

import datetime as dt

import httpx

from jobs.writers.llm_http import retry_after_seconds
from jobs.writers.llm_parse import RawPost, parse_posts


def texts(posts: list[RawPost]) -> list[str]:
    return [p.text for p in posts]


def test_structured_object() -> None:
    payload = {"posts": [{"text": "One", "angle": "teaser"}, {"text": "Two", "angle": "question"}]}
    assert parse_posts(payload) == [RawPost("One", "teaser"), RawPost("Two", "question")]


def test_json_string_and_bare_list() -> None:
    assert texts(parse_posts('{"posts": [{"text": "A"}, {"text": "B"}]}')) == ["A", "B"]
    assert texts(parse_posts('["A", "B"]')) == ["A", "B"]
    assert texts(parse_posts([{"post": "A"}, "B", 3, None])) == ["A", "B"]


def test_json_inside_code_fence_with_chatter_and_trailing_comma() -> None:
    reply = 'Sure! Here they are:\n```json\n{"posts": [{"text": "First post"}, {"text": "Second post"},]}\n```\nEnjoy!'
    assert texts(parse_posts(reply)) == ["First post", "Second post"]


def test_numbered_lines_spanning_several_lines() -> None:
    reply = (
        "Here are three posts:\n"
        "1. Meet the book.\nIt is good to read.\n"
        "2) Second post here.\n"
        "3. \"Third post.\"\n"
    )
    assert texts(parse_posts(reply)) == ["Meet the book.\nIt is good to read.", "Second post here.", "Third post."]


def test_unreadable_reply_gives_nothing() -> None:
    assert parse_posts("I'm sorry, I can't help with that.") == []
    assert parse_posts("") == []
    assert parse_posts({"error": "nope"}) == []


def test_retry_after_forms() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "7"})) == 7.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "1500"})) == 1.5
    assert retry_after_seconds(httpx.Headers({})) is None
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None
    when = dt.datetime(2030, 1, 1, 12, 0, 10, tzinfo=dt.timezone.utc)
    now = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc).timestamp()
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds(httpx.Headers({"Retry-After": header}), now=now) == 10.0
