"""Checks every post must pass, whoever wrote it: no near-duplicates, readable, no invented claims, clean text."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import regex
from rapidfuzz import fuzz, process

from jobs.platforms import extract_urls
from jobs.writers.models import Book
from jobs.writers.readability import MIN_READING_EASE, flesch_reading_ease

NEAR_DUPLICATE_RATIO = 90.0  # rapidfuzz ratio above this counts as the same post

# Claims a post may only make when the book profile itself makes them.
CLAIM_PATTERNS: tuple[tuple[str, regex.Pattern[str]], ...] = (
    ("bestseller", regex.compile(r"best[\s-]?sell", regex.IGNORECASE)),
    ("award", regex.compile(r"\baward", regex.IGNORECASE)),
    ("prize", regex.compile(r"\bprize", regex.IGNORECASE)),
    ("star rating", regex.compile(
        r"★|☆|⭐|\b[1-5](?:\.\d)?\s*(?:/\s*5\s*)?stars?\b|five[\s-]stars?", regex.IGNORECASE)),
    ("#1", regex.compile(r"#\s?1\b|\bnumber one\b|\bno\.\s?1\b", regex.IGNORECASE)),
    ("acclaim", regex.compile(r"\b(?:critically )?acclaimed\b|\brave reviews?\b|\bcritics\b", regex.IGNORECASE)),
    ("sales figures", regex.compile(r"\b(?:million|\d[\d,]*\+?) (?:copies|readers)\b", regex.IGNORECASE)),
    ("price", regex.compile(
        r"[$£€¥]\s?\d|\b\d+\s?%\s?off\b|\b\d+(?:\.\d+)?[cp]\b|\bon sale\b|\bdiscount", regex.IGNORECASE)),
)

# Debris that joining pieces of text can leave behind.
_DEBRIS: tuple[tuple[str, regex.Pattern[str]], ...] = (
    ("template slot", regex.compile(r"[{}]")),
    ("placeholder", regex.compile(r"\[(?:link|url|title|author|book|insert)[^\]]*\]|<(?:link|url)>", regex.IGNORECASE)),
    ("None/null", regex.compile(r"\b(?:None|null|undefined|nan)\b")),
    ("doubled space", regex.compile(r"  ")),
    ("space before punctuation", regex.compile(r"[ \t][,.!?;:]")),
    ("doubled period", regex.compile(r"\.\.")),
    ("clashing punctuation", regex.compile(r"[,;:][,.;:!?]|[.!?][,;:]")),
    ("empty brackets", regex.compile(r"\(\s*\)|\[\s*\]")),
    ("line starting with punctuation", regex.compile(r"(?m)^[ \t]*[,.;:]")),
)


def max_similarity(text: str, others: Sequence[str]) -> float:
    """The highest rapidfuzz ratio between ``text`` and any of ``others`` (0 when there are none)."""
    best = process.extractOne(text, others, scorer=fuzz.ratio) if others else None
    return float(best[1]) if best else 0.0


def near_copies(text: str, others: Sequence[str]) -> list[str]:
    """The texts of ``others`` that ``text`` is a near-duplicate of."""
    if not others:
        return []
    return [match for match, _score, _index in process.extract(
        text, others, scorer=fuzz.ratio, score_cutoff=NEAR_DUPLICATE_RATIO + 1e-9, limit=None)]


# A ratio above NEAR_DUPLICATE_RATIO needs the shorter text to be more than this share of the
# longer: the ratio is 2 * LCS / (a + b), and the longest common subsequence is at most the shorter.
_REACHABLE_SHARE = NEAR_DUPLICATE_RATIO / (200.0 - NEAR_DUPLICATE_RATIO)


class NearCopyIndex:
    """Texts kept by length, so a new text is compared only with those a near-duplicate could be
    (the shorter more than 9/11 of the longer; a hair wider, so rounding never leaves one out)."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._lengths: list[int] = []
        self._texts: list[str] = []
        for text in texts:
            self.add(text)

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str) -> None:
        index = bisect.bisect(self._lengths, len(text))
        self._lengths.insert(index, len(text))
        self._texts.insert(index, text)

    def near_copies(self, text: str) -> list[str]:
        low = bisect.bisect_left(self._lengths, len(text) * _REACHABLE_SHARE * 0.999)
        high = bisect.bisect_right(self._lengths, len(text) / _REACHABLE_SHARE * 1.001)
        return near_copies(text, self._texts[low:high]) if low < high else []


def is_near_duplicate(text: str, others: Sequence[str]) -> bool:
    if not others:
        return False
    # score_cutoff lets rapidfuzz skip pairs that cannot reach the threshold.
    return process.extractOne(text, others, scorer=fuzz.ratio, score_cutoff=NEAR_DUPLICATE_RATIO + 1e-9) is not None


def readable_enough(text: str) -> bool:
    return flesch_reading_ease(text) >= MIN_READING_EASE


def book_text(book: Book) -> str:
    return " ".join((book.title, book.author, book.genre, book.blurb, book.audience, *book.keywords, *book.comparables))


def invented_claims(text: str, book: Book) -> list[str]:
    """Claims in ``text`` that the book profile does not make itself."""
    own = book_text(book)
    return [name for name, pattern in CLAIM_PATTERNS if pattern.search(text) and not pattern.search(own)]


def debris(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """Names of the leftovers found in ``text`` outside URLs and the ``allowed`` spans (title, author)."""
    for span in sorted((a for a in allowed if a), key=len, reverse=True):
        text = text.replace(span, "T")
    for start, end, url in sorted(extract_urls(text), reverse=True):
        text = text[:start] + "URL" + text[end:]
    return [name for name, pattern in _DEBRIS if pattern.search(text)]
