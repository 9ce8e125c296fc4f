"""Hashtag pools: curated genre tags, the book's keywords and title, reader communities.

Tags come only from what the author chose to say about the book (genre, keywords,
title) and from tags readers already follow; never from blurb words, which make
tags nobody searches for (#AnaInherits).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from jobs.writers.text import camel_tag

# Checked in order against the lower-cased genre; the first match wins, so the
# more specific entries come first.
GENRE_TAGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("romantasy", ("Romantasy", "FantasyRomance")),
    ("epic fantasy", ("EpicFantasy", "FantasyBooks")),
    ("urban fantasy", ("UrbanFantasy", "FantasyBooks")),
    ("cozy fantasy", ("CozyFantasy", "FantasyBooks")),
    ("cosy fantasy", ("CozyFantasy", "FantasyBooks")),
    ("fantasy", ("Fantasy", "FantasyBooks")),
    ("science fiction", ("SciFi", "ScienceFiction")),
    ("sci-fi", ("SciFi", "ScienceFiction")),
    ("space opera", ("SpaceOpera", "SciFi")),
    ("cozy mystery", ("CozyMystery", "MysteryBooks")),
    ("cosy mystery", ("CozyMystery", "MysteryBooks")),
    ("mystery", ("Mystery", "MysteryBooks")),
    ("crime", ("CrimeFiction", "CrimeBooks")),
    ("psychological thriller", ("PsychologicalThriller", "Thriller")),
    ("thriller", ("Thriller", "ThrillerBooks")),
    ("historical romance", ("HistoricalRomance", "RomanceBooks")),
    ("romance", ("Romance", "RomanceBooks")),
    ("horror", ("Horror", "HorrorBooks")),
    ("historical fiction", ("HistoricalFiction", "HistFic")),
    ("literary fiction", ("LiteraryFiction", "LitFic")),
    ("young adult", ("YA", "YABooks")),
    ("middle grade", ("MiddleGrade", "KidLit")),
    ("picture book", ("PictureBooks", "KidLit")),
    ("children", ("KidLit", "ChildrensBooks")),
    ("memoir", ("Memoir", "MemoirMonday")),
    ("biography", ("Biography", "Nonfiction")),
    ("self-help", ("SelfHelp", "PersonalGrowth")),
    ("self help", ("SelfHelp", "PersonalGrowth")),
    ("business", ("BusinessBooks", "Leadership")),
    ("poetry", ("Poetry", "PoetryCommunity")),
    ("cookbook", ("Cookbook", "Cooking")),
    ("graphic novel", ("GraphicNovel", "Comics")),
    ("nonfiction", ("Nonfiction", "NonfictionBooks")),
    ("non-fiction", ("Nonfiction", "NonfictionBooks")),
)
GENERIC_TAGS: tuple[str, ...] = ("AmReading", "TBR", "BookRecommendations")
# Reader communities that use a tag of their own on each network.
PLATFORM_TAGS: dict[str, tuple[str, ...]] = {
    "instagram": ("Bookstagram", "BookLover"),
    "tiktok": ("BookTok", "BookTokFYP"),
    "mastodon": ("Bookstodon",),
    "bluesky": ("BookSky",),
    "threads": ("Books",),
    "twitter": ("BookTwitter",),
    "linkedin": ("Books",),
    "facebook": ("BookLovers",),
}
# How many tags a post carries by default on each network (within its hard cap).
PREFERRED_COUNT: dict[str, int] = {
    "twitter": 2,
    "facebook": 2,
    "instagram": 5,
    "linkedin": 3,
    "threads": 1,
    "bluesky": 2,
    "mastodon": 3,
    "tiktok": 4,
}


def genre_tags(genre: str) -> tuple[str, ...]:
    lowered = genre.lower()
    for needle, tags in GENRE_TAGS:
        if needle in lowered:
            return tags
    own = camel_tag(genre) if genre else None
    return (own,) if own else ()


def unique_tags(tags: Iterable[str | None]) -> list[str]:
    """Tags in order without repeats, compared case-insensitively."""
    seen: set[str] = set()
    out: list[str] = []
    for tag in tags:
        if tag and tag.casefold() not in seen:
            seen.add(tag.casefold())
            out.append(tag)
    return out


@lru_cache(maxsize=1024)
def tag_pool(genre: str, keywords: tuple[str, ...], title: str, platform: str) -> tuple[str, ...]:
    """Genre tags, then the keywords' and the title's tags, then community and generic tags."""
    return tuple(unique_tags([
        *genre_tags(genre), *(camel_tag(k) for k in keywords), camel_tag(title),
        *reader_tags(platform),
    ]))


def reader_tags(platform: str) -> tuple[str, ...]:
    """Tags reader communities follow, whatever the book: the network's own and the generic ones."""
    return (*PLATFORM_TAGS.get(platform, ()), *GENERIC_TAGS)
