"""Key phrases of a blurb, found offline with YAKE and filtered to noun-phrase-like ones."""

from __future__ import annotations

import logging
from functools import lru_cache

import regex

log = logging.getLogger(__name__)

# YAKE happily returns spans like "peaks falls silent" that cross a verb. A phrase
# is kept when it sits between phrase boundaries (these words, punctuation or the
# ends of the text), which is where noun phrases sit.
_BOUNDARY_WORDS = frozenset(
    """a an the of to in on for with and or but at by from into onto over under about
    that who whom which as is are was were be been has have had will would must can could
    should may might before after while when where his her their its our your my this these
    those every each some no not than then through until without within across against""".split()
)
_TOKEN = regex.compile(r"[\p{L}\p{M}\p{N}'’-]+|[^\s\p{L}\p{M}\p{N}]")


@lru_cache(maxsize=1)
def _extractor():  # -> yake.KeywordExtractor, imported lazily: numpy/networkx take a while to load
    import yake

    return yake.KeywordExtractor(lan="en", n=2, dedup_lim=0.7, top=12)


@lru_cache(maxsize=512)
def key_phrases(blurb: str, limit: int = 6) -> tuple[str, ...]:
    """Up to ``limit`` key phrases of an English blurb, best first; () when none are usable."""
    if len(blurb.split()) < 4:
        return ()
    try:
        ranked = [phrase for phrase, _score in _extractor().extract_keywords(blurb)]
    except Exception:  # keyphrases are a garnish: a YAKE failure must never stop a post
        log.warning("key phrase extraction failed", exc_info=True)
        return ()
    tokens = _TOKEN.findall(blurb)
    lowered = [t.lower() for t in tokens]
    kept: list[str] = []
    for phrase in ranked:
        if _is_noun_phrase_like(phrase, tokens, lowered) and not any(
            phrase.lower() in k.lower() or k.lower() in phrase.lower() for k in kept
        ):
            kept.append(phrase)
        if len(kept) == limit:
            break
    return tuple(kept)


def _is_noun_phrase_like(phrase: str, tokens: list[str], lowered: list[str]) -> bool:
    words = phrase.lower().split()
    if not words or any(w in _BOUNDARY_WORDS for w in words) or any(len(w) < 3 for w in words):
        return False
    proper = all(w[:1].isupper() for w in phrase.split())
    n = len(words)
    for i in range(len(lowered) - n + 1):
        if lowered[i : i + n] != words:
            continue
        if proper and i > 0 and (tokens[i - 1] == "," or regex.match(r"\p{L}", tokens[i - 1])):
            return True  # a capitalised name mid-sentence ("Lisbon", "Ana Ruiz")
        if n == 1:
            continue  # lone common words ("silent", "find") make poor tags
        before_ok = i == 0 or _is_boundary(lowered[i - 1])
        after_ok = i + n == len(lowered) or _is_boundary(lowered[i + n])
        if before_ok and after_ok:
            return True
    return False


def _is_boundary(token: str) -> bool:
    return token in _BOUNDARY_WORDS or not regex.match(r"[\p{L}\p{N}]", token)
