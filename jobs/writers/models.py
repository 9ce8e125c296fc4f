"""What a writer works from (a book profile) and what it hands back (a post)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from jobs.platforms import Platform

TONES: tuple[str, ...] = ("warm", "punchy", "professional", "playful")
DEFAULT_TONE = "warm"


def hash_once(cls: type) -> type:
    """A frozen dataclass's hash, worked out once per instance rather than from every field on
    each call: the offline writer's caches are keyed by books, profiles and pieces of posts, and
    look them up thousands of times per batch. Equality is still by value."""
    fields = operator.attrgetter(*(f.name for f in dataclasses.fields(cls)))

    def __hash__(self) -> int:  # noqa: N807
        found = self.__dict__.get("_hash")
        if found is None:
            found = self.__dict__["_hash"] = hash(fields(self))
        return found

    cls.__hash__ = __hash__
    return cls


def _clean(value: Any) -> str:
    """A single-line string with runs of whitespace collapsed; None becomes ''."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def _clean_blurb(value: Any) -> str:
    """Like ``_clean`` but keeps paragraph breaks, which mark sentence ends in many blurbs."""
    if value is None:
        return ""
    paragraphs = [" ".join(p.split()) for p in str(value).replace("\r", "").split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _phrases(value: Any) -> tuple[str, ...]:
    """Tuple of non-empty phrases from a list, tuple or comma-separated string, de-duplicated."""
    if value is None:
        return ()
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        phrase = _clean(item)
        if phrase and phrase.casefold() not in seen:
            seen.add(phrase.casefold())
            out.append(phrase)
    return tuple(out)


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ValueError(f"launch_date must be an ISO date (YYYY-MM-DD), got {text!r}") from exc


@hash_once
@dataclass(frozen=True)
class Book:
    title: str
    author: str
    genre: str = ""
    blurb: str = ""
    audience: str = ""
    keywords: tuple[str, ...] = ()
    link: str = ""
    launch_date: dt.date | None = None
    comparables: tuple[str, ...] = ()
    tone: str = DEFAULT_TONE  # warm | punchy | professional | playful

    @classmethod
    def from_dict(cls, d: dict) -> Book:
        """Build a Book from loosely typed data (form fields, JSON): unknown keys are ignored."""
        tone = _clean(d.get("tone")).lower() or DEFAULT_TONE
        return cls(
            title=_clean(d.get("title")),
            author=_clean(d.get("author")),
            genre=_clean(d.get("genre")),
            blurb=_clean_blurb(d.get("blurb")),
            audience=_clean(d.get("audience")),
            keywords=_phrases(d.get("keywords")),
            link=_clean(d.get("link")).replace(" ", ""),
            launch_date=_date(d.get("launch_date")),
            comparables=_phrases(d.get("comparables")),
            tone=tone if tone in TONES else DEFAULT_TONE,
        )


@dataclass(frozen=True)
class Post:
    platform: str
    text: str
    length: int  # by the platform's own counter
    limit: int
    writer: str
    angle: str = ""
    note: str = ""  # e.g. why a fallback happened or why the link was left out

    def to_dict(self) -> dict:
        # Plain fields only, so no deep copy (dataclasses.asdict) is needed.
        return {f: getattr(self, f) for f in _POST_FIELDS}


@runtime_checkable
class Writer(Protocol):
    name: str

    def write_batch(
        self,
        book: Book,
        platform: Platform,
        count: int,
        *,
        seed: int,
        today: dt.date,
        avoid: Sequence[str] = (),
    ) -> Iterator[Post]:
        """Yield ``count`` posts one at a time; ``avoid`` holds texts already made in this batch."""
        ...


_POST_FIELDS = tuple(f.name for f in dataclasses.fields(Post))
