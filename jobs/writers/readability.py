"""Flesch reading ease with syllables from pyphen's hyphenation dictionaries (no downloads)."""

from __future__ import annotations

from functools import lru_cache

import pyphen
import regex

from jobs.platforms import extract_urls

# left/right=1 lets pyphen break next to the ends of a word, which tracks spoken
# syllables more closely than its typesetting defaults.
MIN_READING_EASE = 50.0  # "fairly difficult" starts below this on the Flesch scale
_DICTIONARY = pyphen.Pyphen(lang="en_US", left=1, right=1)
_WORD = regex.compile(r"[\p{L}][\p{L}\p{M}'’-]*")
_SENTENCE_BREAK = regex.compile(r"[.!?…]+|\n+")
_HASHTAG_OR_MENTION = regex.compile(r"[#@][\p{L}\p{M}\p{N}_]+")
_VOWEL_GROUPS = regex.compile(r"[aeiouy]+")
_ENGLISH_MARKERS = frozenset(
    "the and of to a in is it that for with as on was his her their they she he you your "
    "this from by but at be are has have not one an who when what".split()
)


@lru_cache(maxsize=8192)
def syllables(word: str) -> int:
    word = word.lower().strip("'’-")
    if not word:
        return 0
    by_hyphenation = len(_DICTIONARY.positions(word)) + 1
    # Unhyphenatable words ("strength", "rhythm") fall back to vowel groups.
    by_vowels = len(_VOWEL_GROUPS.findall(word)) - (1 if word.endswith("e") and len(word) > 3 else 0)
    return max(1, by_hyphenation, by_vowels if by_hyphenation == 1 else 1)


def prose_of(text: str) -> str:
    """The readable part of a post: without URLs, hashtags, mentions and emoji."""
    pieces: list[str] = []
    last = 0
    for start, end, _ in extract_urls(text):
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    return _HASHTAG_OR_MENTION.sub(" ", "".join(pieces))


def flesch_reading_ease(text: str) -> float:
    """206.835 - 1.015 * words/sentence - 84.6 * syllables/word; 100.0 for text without words."""
    return reading_ease_of(*prose_stats(text)[:3])


@lru_cache(maxsize=65536)
def prose_stats(text: str) -> tuple[int, int, int, bool]:
    """(words, syllables, sentences, whether the last sentence is ended) of a piece of text.

    Pieces whose last sentence is ended add up: the sums are the joined text's.
    """
    prose = prose_of(text)
    parts = _SENTENCE_BREAK.split(prose)
    words = _WORD.findall(prose)
    ended = not _WORD.search(parts[-1])
    return len(words), sum(syllables(w) for w in words), sum(1 for s in parts if _WORD.search(s)), ended


def reading_ease_of(words: int, syllable_total: int, sentences: int) -> float:
    if not words:
        return 100.0
    return 206.835 - 1.015 * (words / max(1, sentences)) - 84.6 * (syllable_total / words)


def looks_english(text: str) -> bool:
    """Heuristic: mostly Latin letters and enough common English function words."""
    letters = regex.findall(r"\p{L}", text)
    if not letters:
        return False
    latin = sum(1 for ch in letters if ch.isascii())
    if latin / len(letters) < 0.8:
        return False
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 6:
        return True  # too short to tell; Latin script is the best evidence there is
    return sum(1 for w in words if w in _ENGLISH_MARKERS) / len(words) >= 0.12
