"""Fit a post to a platform by removing whole pieces, never by cutting text.

A post is held as a ``Draft``: ordered segments (sentences or lines) that are
either required (the ones carrying the title or the link, the call to action)
or optional, plus trailing hashtags. Fitting drops trailing hashtags first,
then optional segments in their drop order, and finally tries the caller's
alternative drafts (shorter hooks, the link moved to the profile). Titles,
links and words are never cut.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import regex

from jobs.platforms import Platform, extract_hashtags
from jobs.writers.hashtags import unique_tags
from jobs.writers.readability import MIN_READING_EASE, flesch_reading_ease
from jobs.writers.text import tidy


@dataclass(frozen=True)
class Segment:
    text: str
    paragraph: int
    required: bool = False
    drop_order: int = 0  # among optional segments, the highest is dropped first
    leans: bool = False  # reads only after the segment before it ("But the elders knew.")


@dataclass(frozen=True)
class Draft:
    segments: tuple[Segment, ...]
    hashtags: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()  # spans tidying must leave alone: title, link
    note: str = ""

    def render(self, paragraph_break: str = "\n\n") -> str:
        paragraphs: dict[int, list[str]] = {}
        for segment in self.segments:
            if segment.text.strip():
                paragraphs.setdefault(segment.paragraph, []).append(segment.text.strip())
        blocks = [_join_sentences(paragraphs[key]) for key in sorted(paragraphs)]
        if self.hashtags:
            blocks.append(" ".join(f"#{tag}" for tag in self.hashtags))
        return tidy(paragraph_break.join(blocks), self.protected)

    def optional(self) -> list[Segment]:
        return [s for s in self.segments if not s.required]

    def without(self, segment: Segment) -> Draft:
        """The draft less ``segment`` and the optional segments right after it that lean on it."""
        kept = list(self.segments)
        index = kept.index(segment)
        del kept[index]
        while index < len(kept) and kept[index].leans and not kept[index].required:
            del kept[index]
        return dataclasses.replace(self, segments=tuple(kept))

    def with_hashtags(self, tags: Sequence[str]) -> Draft:
        return dataclasses.replace(self, hashtags=tuple(tags))


_CJK_END = regex.compile(r"[。！？」』）]$")
_CJK_START = regex.compile(r"^[\p{Han}\p{Hiragana}\p{Katakana}「『（]")


def _join_sentences(sentences: list[str]) -> str:
    """Join with spaces, except between CJK sentences, which are written without them."""
    out = sentences[0]
    for sentence in sentences[1:]:
        out += ("" if _CJK_END.search(out) and _CJK_START.search(sentence) else " ") + sentence
    return out


@dataclass(frozen=True)
class Fitted:
    text: str
    draft: Draft


def paragraph_break(platform: Platform) -> str:
    # Blank lines cost two characters; on the tightest platforms one line break reads as well.
    return "\n" if platform.limit <= 300 else "\n\n"


def fit(draft: Draft, platform: Platform, alternatives: Sequence[Draft] = ()) -> Fitted | None:
    """The first of ``draft`` and ``alternatives`` that can be made to fit, or None."""
    for candidate in (draft, *alternatives):
        fitted = _fit_one(candidate, platform)
        if fitted is not None:
            return fitted
    return None


def _fit_one(draft: Draft, platform: Platform) -> Fitted | None:
    draft = within_hashtag_cap(draft, platform.max_hashtags)
    breaker = paragraph_break(platform)
    text = draft.render(breaker)
    while not platform.fits(text) and draft.hashtags:
        draft = draft.with_hashtags(draft.hashtags[:-1])
        text = draft.render(breaker)
    while not platform.fits(text):
        optional = draft.optional()
        if not optional:
            return None
        # max() keeps the first of equals, so reverse to drop the later of two equal segments.
        draft = draft.without(max(reversed(optional), key=lambda s: s.drop_order))
        text = draft.render(breaker)
    return Fitted(text, draft)


def within_hashtag_cap(draft: Draft, cap: int | None) -> Draft:
    """Trailing tags de-duplicated against each other and inline tags, and cut to the cap.

    When inline tags alone exceed the cap, the surplus ones (from the end) lose
    their '#', which keeps the sentence intact and readable.
    """
    inline = [t.casefold() for s in draft.segments for t in extract_hashtags(s.text)]
    trailing = [t for t in unique_tags(draft.hashtags) if t.casefold() not in inline]
    if cap is None:
        return draft.with_hashtags(trailing)
    if len(inline) <= cap:
        return draft.with_hashtags(trailing[: cap - len(inline)])
    surplus = len(inline) - cap
    segments = list(draft.segments)
    for index in range(len(segments) - 1, -1, -1):
        if surplus == 0:
            break
        segment = segments[index]
        text, surplus = _dehash_from_end(segment.text, surplus)
        segments[index] = dataclasses.replace(segment, text=text)
    return dataclasses.replace(draft, segments=tuple(segments), hashtags=())


_INLINE_TAG = regex.compile(r"(?<![\w#&/\\])#(?=[\p{L}\p{M}\p{N}_]*[\p{L}\p{M}])")


def _dehash_from_end(text: str, surplus: int) -> tuple[str, int]:
    positions = [m.start() for m in _INLINE_TAG.finditer(text)]
    for pos in reversed(positions):
        if surplus == 0:
            break
        text = text[:pos] + text[pos + 1 :]
        surplus -= 1
    return text, surplus


def make_readable(fitted: Fitted, platform: Platform) -> Fitted | None:
    """Drop the optional pieces that hurt readability most until the post reads easily; None if it never does."""
    breaker = paragraph_break(platform)
    current = fitted
    while flesch_reading_ease(current.text) < MIN_READING_EASE:
        options = [Fitted(d.render(breaker), d) for d in (current.draft.without(s) for s in current.draft.optional())]
        if not options:
            return None
        current = max(options, key=lambda f: flesch_reading_ease(f.text))
    return current
