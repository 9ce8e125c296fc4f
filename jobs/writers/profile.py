"""What the offline writer knows about a book: its sentences, themes, launch phase and slot values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import regex

from jobs.writers.models import Book, hash_once
from jobs.writers.phrasing import as_list_item, is_adjective, leans_on_previous
from jobs.writers.readability import looks_english
from jobs.writers.text import (
    ensure_terminal,
    format_day,
    join_words,
    lower_first,
    sentence_case,
    split_sentences,
    with_article,
)

# A keyword that names a price offer; only the profile's own wording is ever used for a deal post.
_OFFER = regex.compile(
    r"\b(deal|sale|discount|offer|free|price|promo|bargain|countdown deal)\b|\d+\s?%\s?off|[$£€]\s?\d|\d+\s?[cp]\b",
    regex.IGNORECASE,
)
COUNTDOWN_DAYS = 60  # beyond this a launch is announced by date, not by a day count
REVIEW_WINDOW_DAYS = 3 * 365  # asking for reviews years after launch reads oddly
# Angles that only make sense at one moment; they lead a batch when they apply.
TIMELY_ANGLES = ("launch_countdown", "release_day", "deal")


@hash_once
@dataclass(frozen=True)
class BookProfile:
    book: Book
    english: bool
    sentences: tuple[str, ...]
    openers: tuple[int, ...]  # indices of sentences that read well without the one before
    questions: tuple[str, ...]  # blurb questions that stand alone
    themes: tuple[str, ...]  # keywords shaped to be listed ("islands", "family secrets")
    keywords: tuple[str, ...]  # the book's keywords as given, less an offer
    offer: str
    phase: str  # "unknown" | "future" | "today" | "past"
    days_to_launch: int | None
    base_slots: tuple[tuple[str, str], ...]

    def angles(self) -> list[str]:
        found = ["spotlight", "question", "behind_the_scenes"]
        if self.sentences:
            found.append("teaser")
        if self.themes or self.book.audience:
            found.append("readers_who")
        if self.book.comparables:
            found.append("comparables")
        if self.phase == "future":
            found.append("launch_countdown")
        elif self.phase == "today":
            found.append("release_day")
        elif self.phase == "past" and self.days_to_launch is not None and -self.days_to_launch <= REVIEW_WINDOW_DAYS:
            found.append("review_request")
        if self.offer and self.phase != "future":
            found.append("deal")
        return found

    def slots(self, *, line: str = "", theme_shift: int = 0) -> dict[str, str]:
        values = dict(self.base_slots)
        if self.themes:
            shift = theme_shift % len(self.themes)
            chosen = (self.themes[shift:] + self.themes[:shift])[:3]
            values["themes"] = join_words(chosen)
            values["Themes"] = sentence_case(values["themes"])
        if line:
            values["line"] = line
        return values


@lru_cache(maxsize=256)
def build_profile(book: Book, today: dt.date) -> BookProfile:
    english = looks_english(book.blurb or book.title)
    sentences = tuple(ensure_terminal(s) for s in split_sentences(book.blurb))
    openers = tuple(i for i, s in enumerate(sentences) if i == 0 or not leans_on_previous(s))
    questions = tuple(sentences[i] for i in openers if sentences[i].endswith("?"))
    offer = next((k for k in book.keywords if _OFFER.search(k)), "")
    keywords = tuple(k for k in book.keywords if k != offer)
    moods = tuple(k.lower() for k in keywords if is_adjective(k))
    # Only Latin-script keywords go into English sentences; all of them can still be tags.
    themes = tuple(
        as_list_item(_as_common_noun(k, book.blurb))
        for k in keywords
        if not is_adjective(k) and regex.search(r"[A-Za-z]", k)
    )
    phase, days = _phase(book.launch_date, today)
    return BookProfile(
        book=book,
        english=english,
        sentences=sentences,
        openers=openers,
        questions=questions,
        themes=themes,
        keywords=keywords,
        offer=offer,
        phase=phase,
        days_to_launch=days,
        base_slots=tuple(_base_slots(book, today, questions, offer, phase, days, moods).items()),
    )


def _as_common_noun(phrase: str, blurb: str) -> str:
    """Lower-case a capitalised keyword ("Found family") only when the blurb shows it is no name ("Paris")."""
    lowered = lower_first(phrase)
    if lowered != phrase and regex.search(rf"(?<!\w){regex.escape(lowered)}(?!\w)", blurb):
        return lowered
    return phrase


def _phase(launch: dt.date | None, today: dt.date) -> tuple[str, int | None]:
    if launch is None:
        return "unknown", None
    days = (launch - today).days
    if days > 0:
        return "future", days
    return ("today" if days == 0 else "past"), days


def _genre_phrase(genre: str) -> str:
    # Lower-case genre words but keep acronyms such as "YA" or "LGBTQ+".
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in genre.split())


def _base_slots(
    book: Book, today: dt.date, questions: tuple[str, ...], offer: str, phase: str, days: int | None,
    moods: tuple[str, ...],
) -> dict[str, str]:
    # Genre words go into English sentences only when they are written in Latin script.
    genre = _genre_phrase(book.genre) if regex.search(r"[A-Za-z]", book.genre) else ""
    if genre and moods and moods[0] not in genre.split():
        genre = f"{moods[0]} {genre}"  # an adjective keyword describes the book: "a dark horror read"
    values = {
        "title": book.title,
        "author": book.author,
        "genre_read": f"{genre} read" if genre else "read",
        "a_genre_read": with_article(f"{genre} read") if genre else "a new read",
        "a_genre_book": with_article(f"{genre} book") if genre else "a book",
    }
    if book.audience:
        values["audience"] = lower_first(book.audience.rstrip("."))
    if book.comparables:
        values["comps"] = join_words(list(book.comparables[:2]), "or")
    if questions:
        values["question"] = questions[0]
    if offer:
        values["offer"] = offer
    if phase == "future" and book.launch_date is not None and days is not None:
        values["date"] = format_day(book.launch_date, today)
        values["when"] = "tomorrow" if days == 1 else f"on {values['date']}"
        if days <= COUNTDOWN_DAYS:
            values["days_phrase"] = "1 day" if days == 1 else f"{days} days"
    return values
