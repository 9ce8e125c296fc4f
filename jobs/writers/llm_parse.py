"""Read posts out of whatever an LLM sent back: JSON, JSON in code fences, a bare list, numbered lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import regex

_FENCE = regex.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)```", regex.DOTALL)
_TRAILING_COMMA = regex.compile(r",\s*([\]}])")
_ITEM_MARKER = regex.compile(r"^\s*(?:(?:post\s*)?\d{1,2}\s*[.):-]|[-*•])\s+", regex.IGNORECASE | regex.MULTILINE)
_LABEL = regex.compile(r"^\s*(?:\*\*)?(?:post|text)\s*\d*\s*:(?:\*\*)?\s*", regex.IGNORECASE)
_TEXT_KEYS = ("text", "post", "content", "body", "caption")
_LIST_KEYS = ("posts", "items", "results", "data")


@dataclass(frozen=True)
class RawPost:
    text: str
    angle: str = ""


def parse_posts(payload: Any) -> list[RawPost]:
    """Posts found in ``payload`` (a decoded JSON value or reply text); [] if none can be read."""
    if isinstance(payload, str):
        return _from_text(payload)
    return _from_json(payload)


def _from_json(value: Any) -> list[RawPost]:
    if isinstance(value, dict):
        for key in _LIST_KEYS:
            if isinstance(value.get(key), list):
                return _from_json(value[key])
        post = _post_from_item(value)
        return [post] if post else []
    if isinstance(value, list):
        return [post for item in value if (post := _post_from_item(item))]
    if isinstance(value, str):
        return _from_text(value)
    return []


def _post_from_item(item: Any) -> RawPost | None:
    if isinstance(item, str):
        text = _clean(item)
        return RawPost(text) if text else None
    if isinstance(item, dict):
        for key in _TEXT_KEYS:
            if isinstance(item.get(key), str) and item[key].strip():
                angle = item.get("angle")
                return RawPost(_clean(item[key]), angle.strip() if isinstance(angle, str) else "")
    return None


def _from_text(text: str) -> list[RawPost]:
    text = text.strip()
    if not text:
        return []
    for candidate in _json_candidates(text):
        decoded = _loads(candidate)
        if decoded is not None:
            posts = _from_json(decoded)
            if posts:
                return posts
    return _from_numbered_lines(text)


def _json_candidates(text: str) -> list[str]:
    candidates = [text, *(m.group(1) for m in _FENCE.finditer(text))]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    return candidates


def _loads(candidate: str) -> Any:
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            return json.loads(attempt)
        except ValueError:
            continue
    return None


def _from_numbered_lines(text: str) -> list[RawPost]:
    """Posts from '1. ...' / '- ...' items; an item runs until the next marker (it may span lines)."""
    text = _FENCE.sub(lambda m: m.group(1), text)
    starts = [m for m in _ITEM_MARKER.finditer(text)]
    if len(starts) < 1:
        return []
    posts: list[RawPost] = []
    for index, marker in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        body = _clean(text[marker.end() : end])
        if body:
            posts.append(RawPost(body))
    return posts


def _clean(text: str) -> str:
    text = _LABEL.sub("", text.strip())
    text = text.strip().strip('"“”').strip()
    lines = [" ".join(line.split()) for line in text.replace("\r", "").split("\n")]
    # Keep paragraph breaks (they separate hook, body and hashtags) but no runs of blank lines.
    return regex.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
