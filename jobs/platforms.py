"""Social platforms the marketing posts are written for, and how each one measures a post.

Every platform counts length its own way (weighted characters, grapheme
clusters, UTF-8 bytes for emoji, fixed-length URLs), so the writers never use
``len()`` directly: they ask ``Platform.count`` / ``Platform.fits``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.resources
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import regex

__all__ = [
    "PLATFORMS",
    "Platform",
    "escape_linkedin",
    "extract_hashtags",
    "extract_urls",
    "get_platform",
]

BLUESKY_MAX_BYTES = 3000
# Mastodon and X replace every URL by a fixed-length placeholder when counting.
URL_PLACEHOLDER_LENGTH = 23
TWITTER_LIMIT = 280

_GRAPHEME = regex.compile(r"\X")
# A grapheme is counted as an emoji when it holds a pictographic code point or a
# regional-indicator flag; text-style digits and '#' are left out on purpose.
_EMOJI_GRAPHEME = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}]")
_MAYBE_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3\ufe0f]")
# A hashtag starts after whitespace, start of text or opening punctuation and
# holds letters/digits (any script); it needs at least one letter.
_HASHTAG = regex.compile(r"(?<![\w#&/\\])#([\p{L}\p{M}\p{N}_]*[\p{L}\p{M}][\p{L}\p{M}\p{N}_]*)")
# LinkedIn "little" text format: these characters must be backslash-escaped to be
# read as plain text, otherwise the Posts API silently truncates the commentary.
LINKEDIN_RESERVED = frozenset("\\|{}@[]()<>#*_~")
# A plain #Tag is a HashtagElement in the little format, so hashtags keep their '#'.
_LINKEDIN_HASHTAG = regex.compile(r"(?<![\w#\\])#[\p{L}\p{M}\p{N}]*[\p{L}\p{M}][\p{L}\p{M}\p{N}]*")
_REMOTE_MENTION = regex.compile(r"(?<![\w@])(@[\w.]+)@[\w.-]+\w")


def _load_twitter_text() -> types.ModuleType:
    """Import twitter-text-parser, which still reads its bundled emoji table via ``pkg_resources``.

    setuptools 82 removed ``pkg_resources``; the library only calls
    ``resource_string`` once at import time, so when the real module is missing we
    lend it a stand-in for that one call and take it away again afterwards.
    """
    if "twitter_text" in sys.modules:
        return sys.modules["twitter_text"]
    lent = "pkg_resources" not in sys.modules
    if lent:
        stand_in = types.ModuleType("pkg_resources")

        def resource_string(package: str, name: str) -> bytes:
            return importlib.resources.files(package).joinpath(name).read_bytes()

        stand_in.resource_string = resource_string  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = stand_in
    try:
        return importlib.import_module("twitter_text")
    finally:
        if lent:
            sys.modules.pop("pkg_resources", None)


_twitter_text = _load_twitter_text()
_TWITTER_OPTIONS: dict = importlib.import_module("twitter_text.config").config["defaults"]
_TWITTER_PLAIN_OPTIONS = {**_TWITTER_OPTIONS, "emoji_parsing_enabled": False}


def extract_urls(text: str, *, without_protocol: bool = True) -> list[tuple[int, int, str]]:
    """URLs in ``text`` as (start, end, url), by the twitter-text URL grammar."""
    return list(_urls(text, without_protocol))


# Writers measure the same candidate text several times (length, hashtags, links).
@lru_cache(maxsize=4096)
def _urls(text: str, without_protocol: bool) -> tuple[tuple[int, int, str], ...]:
    # A URL never spans a space or a line break, so each word is searched on its own (and
    # remembered: posts of a book share most of their words, the link above all).
    if "." not in text:
        return ()
    found: list[tuple[int, int, str]] = []
    offset = 0
    for word in text.replace("\n", " ").split(" "):
        if "." in word:
            found += [(offset + start, offset + end, url) for start, end, url in _word_urls(word, without_protocol)]
        offset += len(word) + 1
    return tuple(found)


@lru_cache(maxsize=16384)
def _word_urls(word: str, without_protocol: bool) -> tuple[tuple[int, int, str], ...]:
    found = _twitter_text.extract_urls_with_indices(word, without_protocol)
    return tuple((u["indices"][0], u["indices"][1], u["url"]) for u in found)


def _without_urls(text: str) -> str:
    pieces: list[str] = []
    last = 0
    for start, end, _ in extract_urls(text):
        pieces.append(text[last:start])
        pieces.append(" ")
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def extract_hashtags(text: str) -> list[str]:
    """Hashtags (without '#') in order of appearance; URL fragments are not hashtags."""
    return [m.group(1) for m in _HASHTAG.finditer(_without_urls(text))]


# Counting word by word (each word remembered) gives the whole text's count when no grapheme
# cluster spans a space or line break: a combining mark, joiner or skin tone right after one,
# or a prepended mark right before one, would join across it.
_GLUED = regex.compile(r"[ \n][\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}]|\p{GCB=Prepend}[ \n]")
_WORD_CACHE = 65536


def _wordwise(text: str, per_word: Callable[[str], int], whole: Callable[[str], int]) -> int:
    """``whole(text)``, computed as the sum over words plus one per space or line break."""
    if "\r" in text or (not text.isascii() and _GLUED.search(text)):
        return whole(text)
    words = text.replace("\n", " ").split(" ")
    return len(words) - 1 + sum(map(per_word, words))


def _graphemes(text: str) -> int:
    return len(_GRAPHEME.findall(text))


_word_graphemes = lru_cache(maxsize=_WORD_CACHE)(_graphemes)


def count_graphemes(text: str) -> int:
    if text.isascii():
        return len(text) - text.count("\r\n")
    return _wordwise(text, _word_graphemes, _graphemes)


def _twitter(text: str) -> int:
    if not text:
        return 0
    if text.isascii() and "." not in text:
        # Every ASCII character weighs 1 (a CRLF counts as one line break); no URL without a '.'.
        return len(text) - text.count("\r\n")
    # Without any emoji code point the costly emoji scan cannot change the count, so skip it.
    maybe_emoji = not text.isascii() and _MAYBE_EMOJI.search(text) is not None
    options = _TWITTER_OPTIONS if maybe_emoji else _TWITTER_PLAIN_OPTIONS
    return int(_twitter_text.parse_tweet(text, options).weightedLength)


_word_twitter = lru_cache(maxsize=_WORD_CACHE)(_twitter)


def count_twitter(text: str) -> int:
    """Weighted length by the twitter-text v3 rules (URL = 23, emoji and CJK = 2)."""
    # Spaces and line breaks weigh 1 and no URL or emoji spans one, so words add up.
    if "\r" in text:
        return _twitter(text)
    words = text.replace("\n", " ").split(" ")
    return len(words) - 1 + sum(map(_word_twitter, words))


def _threads(text: str) -> int:
    total = 0
    for grapheme in _GRAPHEME.findall(text):
        if _EMOJI_GRAPHEME.search(grapheme):
            total += len(grapheme.encode("utf-8"))
        else:
            total += len(grapheme)
    return total


_word_threads = lru_cache(maxsize=_WORD_CACHE)(_threads)


def count_threads(text: str) -> int:
    """Characters, except that an emoji costs its UTF-8 byte length."""
    if text.isascii():
        return len(text)
    return _wordwise(text, _word_threads, _threads)


def _mastodon(text: str) -> int:
    pieces: list[str] = []
    last = 0
    for start, end, _ in extract_urls(text, without_protocol=False):
        pieces.append(text[last:start])
        pieces.append("x" * URL_PLACEHOLDER_LENGTH)
        last = end
    pieces.append(text[last:])
    flattened = _REMOTE_MENTION.sub(r"\1", "".join(pieces))
    return count_graphemes(flattened)


_word_mastodon = lru_cache(maxsize=_WORD_CACHE)(_mastodon)


def count_mastodon(text: str) -> int:
    """Grapheme clusters, with each http(s) URL counted as 23 and remote mentions as their local part."""
    return _wordwise(text, _word_mastodon, _mastodon)


def count_codepoints(text: str) -> int:
    return len(text)


def _linkedin(text: str) -> int:
    return len(escape_linkedin(text))


_word_linkedin = lru_cache(maxsize=_WORD_CACHE)(_linkedin)


def count_linkedin(text: str) -> int:
    """Length of the escaped commentary, since that is what the Posts API receives and limits."""
    # Escaping is decided within a word (a URL or a hashtag never spans a space).
    return _wordwise(text, _word_linkedin, _linkedin)


def escape_linkedin(text: str) -> str:
    """Backslash-escape LinkedIn's reserved characters so the text is read as plain text.

    URLs are left untouched so they still auto-link, and a leading '#' of a
    hashtag is kept so the tag stays clickable (a HashtagElement in the little
    format). Everything else reserved is escaped.
    """
    out: list[str] = []
    last = 0
    for start, end, url in extract_urls(text):
        out.append(_escape_linkedin_plain(text[last:start]))
        out.append(url)
        last = end
    out.append(_escape_linkedin_plain(text[last:]))
    return "".join(out)


def _escape_linkedin_plain(chunk: str) -> str:
    kept_hashes = {m.start() for m in _LINKEDIN_HASHTAG.finditer(chunk)}
    return "".join(
        "\\" + ch if ch in LINKEDIN_RESERVED and i not in kept_hashes else ch
        for i, ch in enumerate(chunk)
    )


def _identity(text: str) -> str:
    return text


_COUNTERS: dict[str, Callable[[str], int]] = {
    "twitter": count_twitter,
    "threads": count_threads,
    "bluesky": count_graphemes,
    "mastodon": count_mastodon,
    "linkedin": count_linkedin,
}
_ESCAPERS: dict[str, Callable[[str], str]] = {"linkedin": escape_linkedin}


@lru_cache(maxsize=4096)  # a writer counts a finished post twice: checking it fits, then stating its length
def _count(name: str, text: str) -> int:
    return _COUNTERS.get(name, count_codepoints)(text)
_BYTE_CAPS: dict[str, int] = {"bluesky": BLUESKY_MAX_BYTES}


@dataclass(frozen=True)
class Platform:
    name: str
    label: str
    limit: int
    max_hashtags: int | None
    links_clickable: bool
    max_links: int | None

    def count(self, text: str) -> int:
        """Length of ``text`` by this platform's own counting rules."""
        return _count(self.name, text)

    @property
    def byte_cap(self) -> int | None:
        """UTF-8 bytes a post may hold, where the platform caps them besides its length."""
        return _BYTE_CAPS.get(self.name)

    def fits(self, text: str) -> bool:
        """True when ``text`` passes every posting rule: length, byte cap, hashtag cap, link cap."""
        if self.count(text) > self.limit:
            return False
        byte_cap = self.byte_cap
        if byte_cap is not None and len(text.encode("utf-8")) > byte_cap:
            return False
        if self.max_hashtags is not None and len(extract_hashtags(text)) > self.max_hashtags:
            return False
        if self.max_links is not None and len(extract_urls(text)) > self.max_links:
            return False
        return True

    def escape(self, text: str) -> str:
        """Text as it must be sent to the platform's API (LinkedIn's reserved characters)."""
        return _ESCAPERS.get(self.name, _identity)(text)


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform("twitter", "X / Twitter", TWITTER_LIMIT, None, True, None),
        Platform("facebook", "Facebook", 63_206, None, True, None),
        # Instagram captions do not link URLs and allow five hashtags since late 2025;
        # a URL there is dead text, so none is allowed in a post.
        Platform("instagram", "Instagram", 2_200, 5, False, 0),
        Platform("linkedin", "LinkedIn", 3_000, None, True, None),
        # Threads turns only one tag per post into a topic.
        Platform("threads", "Threads", 500, 1, True, 5),
        Platform("bluesky", "Bluesky", 300, None, True, None),
        Platform("mastodon", "Mastodon", 500, None, True, None),
        Platform("tiktok", "TikTok", 2_200, None, False, 0),
    )
}


@lru_cache(maxsize=64)
def _mastodon_with_limit(limit: int) -> Platform:
    return dataclasses.replace(PLATFORMS["mastodon"], limit=limit)


def get_platform(name: str, *, mastodon_limit: int = 500) -> Platform:
    """The platform called ``name``; Mastodon instances choose their own limit. KeyError if unknown."""
    platform = PLATFORMS[name]
    if name == "mastodon" and mastodon_limit != platform.limit:
        if mastodon_limit <= 0:
            raise ValueError(f"mastodon_limit must be positive, got {mastodon_limit}")
        return _mastodon_with_limit(mastodon_limit)
    return platform
