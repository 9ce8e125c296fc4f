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
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import regex

from jobs.platforms import Platform, extract_hashtags, extract_urls
from jobs.writers.hashtags import unique_tags
from jobs.writers.models import hash_once
from jobs.writers.readability import MIN_READING_EASE, flesch_reading_ease, prose_stats, reading_ease_of
from jobs.writers.text import tidy


@hash_once
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

    @cached_property
    def blocks(self) -> list[list[str]]:
        """Tidied pieces by paragraph, the hashtag line last: what ``render`` joins (worked out
        once per draft: measuring, reading ease and rendering all look at them)."""
        paragraphs: dict[int, list[str]] = {}
        for segment in self.segments:
            piece = _tidy_piece(segment.text, self.protected)
            if piece:
                paragraphs.setdefault(segment.paragraph, []).append(piece)
        blocks = [paragraphs[key] for key in sorted(paragraphs)]
        if self.hashtags:
            blocks.append([hashtag_line(self.hashtags)])
        return blocks

    def render(self, paragraph_break: str = "\n\n") -> str:
        # Pieces are tidied one by one (and remembered); joining tidy, stripped pieces with one
        # space or line break leaves nothing for tidying to do.
        return paragraph_break.join(_join_sentences(block) for block in self.blocks)

    def optional(self) -> list[Segment]:
        return [s for s in self.segments if not s.required]

    def without(self, segment: Segment) -> Draft:
        """The draft less ``segment`` and the optional segments right after it that lean on it."""
        kept = list(self.segments)
        _remove(kept, kept.index(segment))
        return Draft(tuple(kept), self.hashtags, self.protected, self.note)

    def with_hashtags(self, tags: Sequence[str]) -> Draft:
        tags = tuple(tags)
        if tags == self.hashtags:
            return self  # the same draft keeps what it has worked out (its rendered blocks)
        return Draft(self.segments, tags, self.protected, self.note)


@lru_cache(maxsize=65536)
def _tidy_piece(text: str, protected: tuple[str, ...]) -> str:
    return tidy(text.strip(), protected)


def hashtag_line(tags: Sequence[str]) -> str:
    return " ".join(f"#{tag}" for tag in tags)


_CJK_ENDS = frozenset("。！？」』）")
_CJK_START = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}「『（]")


def _join_sentences(sentences: list[str]) -> str:
    """Join with spaces, except between CJK sentences, which are written without them."""
    out = sentences[0]
    for sentence in sentences[1:]:
        cjk = out[-1:] in _CJK_ENDS and _CJK_START.match(sentence) is not None
        out += ("" if cjk else " ") + sentence
    return out


@dataclass(frozen=True)
class Fitted:
    text: str
    draft: Draft


def paragraph_break(platform: Platform) -> str:
    # Blank lines cost two characters; on the tightest platforms one line break reads as well.
    return "\n" if platform.limit <= 300 else "\n\n"


class Gauge:
    """A platform's measures of pieces of text, each piece measured once.

    A draft's measures are the sums over its pieces plus one per space or line break
    between them. That is an upper bound of the rendered text's (joining CJK sentences
    without a space only shortens it), so the loops that drop pieces decide on sums and
    the rendered result is checked once by the platform's own rules.
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.breaker = paragraph_break(platform)
        self._pieces: dict[str, tuple[int, int, int, int]] = {}
        self._segments: dict[tuple[Segment, tuple[str, ...]], tuple[int, int, int, int] | None] = {}
        self._tag_lines: dict[tuple[str, ...], dict[int, tuple[int, int, int, int]]] = {}

    def piece(self, text: str) -> tuple[int, int, int, int]:
        """(length, UTF-8 bytes, hashtags, links) of one piece."""
        found = self._pieces.get(text)
        if found is None:
            if len(self._pieces) > 50_000:
                self._pieces.clear()
            found = (self.platform.count(text), *_piece_facts(text))
            self._pieces[text] = found
        return found

    def segment(self, segment: Segment, protected: tuple[str, ...]) -> tuple[int, int, int, int] | None:
        """The measures of a segment as tidied (None when tidying leaves nothing), remembered by
        segment: a batch measures the same hooks, sentences and lines for candidate after candidate."""
        key = (segment, protected)
        found = self._segments.get(key, False)
        if found is False:
            if len(self._segments) > 50_000:
                self._segments.clear()
            text = _tidy_piece(segment.text, protected)
            found = self._segments[key] = self.piece(text) if text else None
        return found

    def tag_lines(self, tags: tuple[str, ...]) -> dict[int, tuple[int, int, int, int]]:
        """The measures of the tag line by how many of ``tags`` it keeps (tags only ever go from
        the end), remembered per set of tags."""
        found = self._tag_lines.get(tags)
        if found is None:
            if len(self._tag_lines) > 4096:
                self._tag_lines.clear()
            found = self._tag_lines[tags] = {
                n: self.piece(hashtag_line(tags[:n])) for n in range(1, len(tags) + 1)}
        return found

    def shrink(self, draft: Draft, limit: int | None = None, *, tags_first: bool = True) -> Draft | None:
        """``shrink`` decided on sums (and within ``limit``; hashtags kept when not ``tags_first``)."""
        platform = self.platform
        cap = platform.limit if limit is None else min(limit, platform.limit)
        byte_cap = platform.byte_cap
        measures: dict[int, tuple[int, int, int, int]] = {}
        for segment in draft.segments:
            found = self.segment(segment, draft.protected)
            if found is not None:
                measures[id(segment)] = found
        breaker = len(self.breaker)
        tag_lines = self.tag_lines(draft.hashtags)

        def fits(segments: Sequence[Segment], tags: Sequence[str]) -> bool:
            length = size = tag_count = links = pieces = 0
            paragraphs: set[int] = set()
            for segment in segments:
                found = measures.get(id(segment))
                if found is not None:
                    length += found[0]
                    size += found[1]
                    tag_count += found[2]
                    links += found[3]
                    pieces += 1
                    paragraphs.add(segment.paragraph)
            blocks = len(paragraphs)
            if tags:
                a, b, c, _ = tag_lines[len(tags)]
                length += a
                size += b
                tag_count += c
                blocks += 1
            gaps = pieces - len(paragraphs) + breaker * max(0, blocks - 1)
            return (
                length + gaps <= cap
                and (byte_cap is None or size + gaps <= byte_cap)
                and (platform.max_hashtags is None or tag_count <= platform.max_hashtags)
                and (platform.max_links is None or links <= platform.max_links)
            )

        return shrink(draft, fits, tags_first)

    def reading_ease(self, draft: Draft) -> float:
        words = syllable_total = sentences = 0
        for block in draft.blocks:
            for piece in block:
                w, s, n, _ = prose_stats(piece)
                words += w
                syllable_total += s
                sentences += n
        return reading_ease_of(words, syllable_total, sentences)

    @staticmethod
    def reading_ease_adds_up(draft: Draft) -> bool:
        """True when the sums give the rendered text's reading ease: every piece followed by another
        in its paragraph ends its last sentence (a line break ends one anyway)."""
        return all(prose_stats(piece)[3] for block in draft.blocks for piece in block[:-1])


@lru_cache(maxsize=16384)  # the same on every platform: worked out once per piece, not per platform
def _piece_facts(text: str) -> tuple[int, int, int]:
    """(UTF-8 bytes, hashtags, links) of a piece of text."""
    return len(text.encode()), len(extract_hashtags(text)), len(extract_urls(text))


@lru_cache(maxsize=64)
def gauge_for(platform: Platform) -> Gauge:
    return Gauge(platform)


def fit(draft: Draft, platform: Platform, alternatives: Iterable[Draft] = ()) -> Fitted | None:
    """The first of ``draft`` and ``alternatives`` that can be made to fit, or None."""
    for candidate in itertools.chain((draft,), alternatives):
        fitted = _fit_one(candidate, platform)
        if fitted is not None:
            return fitted
    return None


def _fit_one(draft: Draft, platform: Platform) -> Fitted | None:
    gauge = gauge_for(platform)
    shrunk = gauge.shrink(within_hashtag_cap(draft, platform.max_hashtags))
    if shrunk is None:
        return None
    text = shrunk.render(gauge.breaker)
    if platform.fits(text):
        return Fitted(text, shrunk)

    # The sums missed something the whole text shows: go on by the platform's own rules.
    def exact(segments: Sequence[Segment], tags: Sequence[str]) -> bool:
        return platform.fits(Draft(tuple(segments), tuple(tags), shrunk.protected).render(gauge.breaker))

    shrunk = shrink(shrunk, exact)
    return None if shrunk is None else Fitted(shrunk.render(gauge.breaker), shrunk)


def shrink(draft: Draft, fits: Callable[[Sequence[Segment], Sequence[str]], bool], tags_first: bool = True
           ) -> Draft | None:
    """Drop trailing hashtags (when ``tags_first``), then optional segments by drop order, until
    ``fits(segments, hashtags)``. None when it never fits; without ``tags_first``, the draft
    with every optional segment dropped."""
    segments = list(draft.segments)
    tags = list(draft.hashtags)
    while tags_first and tags and not fits(segments, tags):
        tags.pop()
    while not fits(segments, tags):
        optional = [i for i, s in enumerate(segments) if not s.required]
        if not optional:
            if tags_first:
                return None
            break
        # Of equal drop orders the later segment goes first.
        _remove(segments, max(reversed(optional), key=lambda i: segments[i].drop_order))
    if len(segments) == len(draft.segments) and len(tags) == len(draft.hashtags):
        return draft
    return Draft(tuple(segments), tuple(tags), draft.protected, draft.note)


def _remove(segments: list[Segment], index: int) -> None:
    """Remove a segment and the optional ones right after it that lean on it."""
    del segments[index]
    while index < len(segments) and segments[index].leans and not segments[index].required:
        del segments[index]


def within_hashtag_cap(draft: Draft, cap: int | None) -> Draft:
    """Trailing tags de-duplicated against each other and inline tags, and cut to the cap.

    When inline tags alone exceed the cap, the surplus ones (from the end) lose
    their '#', which keeps the sentence intact and readable.
    """
    inline = [t.casefold() for s in draft.segments for t in _inline_tags(s.text)]
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


@lru_cache(maxsize=65536)
def _inline_tags(text: str) -> tuple[str, ...]:
    return tuple(extract_hashtags(text))


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
    gauge = gauge_for(platform)
    draft = _most_readable(fitted.draft, gauge.reading_ease)
    if draft is None:
        return None
    text = draft.render(gauge.breaker)
    if gauge.reading_ease_adds_up(draft) or flesch_reading_ease(text) >= MIN_READING_EASE:
        return Fitted(text, draft)
    draft = _most_readable(draft, lambda d: flesch_reading_ease(d.render(gauge.breaker)))
    return None if draft is None else Fitted(draft.render(gauge.breaker), draft)


def reads_easily(fitted: Fitted, platform: Platform) -> bool:
    """Whether the post's reading ease is at least MIN_READING_EASE, from its pieces' remembered
    figures where those add up to the whole text's (see ``Gauge.reading_ease_adds_up``)."""
    gauge = gauge_for(platform)
    if gauge.reading_ease_adds_up(fitted.draft):
        return gauge.reading_ease(fitted.draft) >= MIN_READING_EASE
    return flesch_reading_ease(fitted.text) >= MIN_READING_EASE


def _most_readable(draft: Draft, ease: Callable[[Draft], float]) -> Draft | None:
    while ease(draft) < MIN_READING_EASE:
        options = [draft.without(s) for s in draft.optional()]
        if not options:
            return None
        draft = max(options, key=ease)
    return draft
