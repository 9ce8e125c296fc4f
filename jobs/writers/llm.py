"""Writers backed by an LLM server, with every post checked and re-fitted.

A post the model returns is kept only if it names the title, invents no claim,
carries no foreign link, reads easily (English books) and is not a near-copy
of an earlier post; it is then fitted with the same routine as offline posts.

When the model cannot be used (a permanent refusal such as a bad key or an unknown
model, transient failures whose retries ran out, a reply that is not JSON) the
ProviderError goes up to the caller: the task fails with every attempt in its timeline,
and a request answered at once gets a JSON error. Nothing passes offline posts off as
the model's. Only when the model answers but twice gives nothing usable for a platform
(claims it may not make, posts that cannot fit) does the offline writer complete that
platform's share, each such post saying so in its note and its `writer`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence

import regex

from jobs.platforms import Platform, extract_hashtags, extract_urls
from jobs.writers.fitting import Draft, Fitted, Segment, fit, make_readable
from jobs.writers.llm_http import ProviderError, RetryPolicy
from jobs.writers.llm_parse import parse_posts
from jobs.writers.llm_prompt import POSTS_SCHEMA, SYSTEM_PROMPT, user_prompt
from jobs.writers.llm_providers import AnthropicMessages, ChatProvider, OpenAIChat
from jobs.writers.models import Book, Post
from jobs.writers.offline import OfflineWriter
from jobs.writers.quality import debris, invented_claims, is_near_duplicate
from jobs.writers.readability import looks_english
from jobs.writers.text import split_sentences

log = logging.getLogger(__name__)

MAX_POSTS_PER_REQUEST = 8
LINK_IN_BIO = "Link in bio."
LINK_IN_PROFILE = "Link in profile."
_TRAILING_TAGS = regex.compile(r"(?:\s*(?<![\w#])#[\p{L}\p{M}\p{N}_]+)+\s*$")


class LLMWriter:
    def __init__(self, provider: ChatProvider) -> None:
        self._provider = provider
        self._offline = OfflineWriter()

    @property
    def name(self) -> str:
        return self._provider.name

    def __repr__(self) -> str:
        chat = self._provider
        return f"LLMWriter(provider={chat.name!r}, model={chat.model!r}, base_url={chat.base_url!r})"

    def close(self) -> None:
        self._provider.close()

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
        produced = list(avoid)
        made = 0
        failure = ""
        empty_rounds = 0
        request = 0
        while made < count and not failure:
            need = count - made
            # A ProviderError is not caught: the caller fails the task or answers the error.
            raw = self._provider.complete(
                SYSTEM_PROMPT,
                user_prompt(book, platform, min(need + 1, MAX_POSTS_PER_REQUEST), today=today,
                            avoid=produced, link_in_text=_link_in_text(book, platform)),
                schema=POSTS_SCHEMA,
                seed=seed + request,
            )
            request += 1
            candidates = parse_posts(raw)
            if not candidates:
                raise ProviderError(f"unreadable reply from {self.name}")
            kept = 0
            for candidate in candidates:
                fitted = refit(candidate.text, book, platform)
                if fitted is None or is_near_duplicate(fitted.text, produced):
                    continue
                produced.append(fitted.text)
                made += 1
                kept += 1
                yield Post(
                    platform=platform.name,
                    text=fitted.text,
                    length=platform.count(fitted.text),
                    limit=platform.limit,
                    writer=self.name,
                    angle=candidate.angle[:40],
                    note=fitted.draft.note,
                )
                if made == count:
                    return
            empty_rounds = 0 if kept else empty_rounds + 1
            if empty_rounds == 2:
                failure = f"{self.name} returned no usable posts"
                log.info("%s writer: %s for %s; the offline writer completes it",
                         self.name, failure, platform.name)
        if made < count:
            yield from self._offline.write_batch(
                book, platform, count - made, seed=seed, today=today, avoid=produced, note=f"fallback: {failure}"
            )


def _link_in_text(book: Book, platform: Platform) -> bool:
    """Whether posts carry the link itself: it must be clickable there and fit beside the title."""
    return bool(book.link) and platform.links_clickable and platform.fits(f"{book.title}\n\nRead more: {book.link}")


def _link_left_out_note(book: Book, platform: Platform) -> str:
    return (f"link left out: it alone is too long for {platform.label} "
            f"({platform.count(book.link)} of {platform.limit}); the post points to the link in profile")


def refit(text: str, book: Book, platform: Platform) -> Fitted | None:
    """The model's post checked and fitted to ``platform``, or None when it cannot be used."""
    draft = draft_from_text(text, book, platform)
    if draft is None:
        return None
    alternatives: list[Draft] = []
    if _link_in_text(book, platform):
        # If the post cannot fit with its link, keep the words and point to the profile instead.
        alternatives.append(_link_moved_to_profile(draft, book))
    fitted = fit(draft, platform, alternatives)
    if fitted is None or invented_claims(fitted.text, book) or debris(fitted.text, (book.title, book.author)):
        return None
    if looks_english(book.blurb or book.title):
        return make_readable(fitted, platform)
    return fitted


def draft_from_text(text: str, book: Book, platform: Platform) -> Draft | None:
    """Split a model's post into segments: those naming the title or carrying the link are required.

    A post that never names the title gets a "{title} by {author}." line; one without
    the link (where it belongs) gets a "Read more" line, and "link in bio" where
    links are not clickable.
    """
    text = _exact_title(text.strip(), book.title)
    if not book.title or not text:
        return None
    tags: list[str] = []
    trailing = _TRAILING_TAGS.search(text)
    if trailing:
        tags = extract_hashtags(trailing.group(0))
        text = text[: trailing.start()].rstrip()
    segments: list[Segment] = []
    order = 0
    for paragraph_index, paragraph in enumerate(p for p in text.split("\n\n") if p.strip()):
        for line in paragraph.split("\n"):
            for sentence in split_sentences(line):
                sentence = _strip_foreign_links(sentence, book, platform)
                if not sentence:
                    continue
                required = book.title in sentence or (bool(book.link) and book.link in sentence)
                segments.append(Segment(sentence, paragraph_index, required=required, drop_order=order))
                order += 1
    last_paragraph = max((s.paragraph for s in segments), default=0)
    if not any(book.title in s.text for s in segments):
        # Models often write "this book"; naming it is cheaper than asking again.
        last_paragraph += 1
        named = f"{book.title} by {book.author}." if book.author else f"{book.title}."
        segments.append(Segment(named, last_paragraph, required=True))
    has_link = bool(book.link) and any(book.link in s.text for s in segments)
    note = ""
    if _link_in_text(book, platform):
        if not has_link:
            segments.append(Segment(f"Read more: {book.link}", last_paragraph + 1, required=True))
    elif book.link and not platform.links_clickable:
        if "link in bio" not in text.lower():
            segments.append(Segment(LINK_IN_BIO, last_paragraph + 1, required=True))
    elif book.link:
        note = _link_left_out_note(book, platform)
        if "link in profile" not in text.lower():
            segments.append(Segment(LINK_IN_PROFILE, last_paragraph + 1, required=True))
    protected = tuple(p for p in (book.title, book.link, book.author) if p)
    return Draft(segments=tuple(segments), hashtags=tuple(tags), protected=protected, note=note)


def _exact_title(text: str, title: str) -> str:
    """Restore the title's exact spelling when the model changed only its case."""
    if not title or title in text:
        return text
    found = regex.search(regex.escape(title), text, flags=regex.IGNORECASE)
    return text[: found.start()] + title + text[found.end() :] if found else text


def _strip_foreign_links(sentence: str, book: Book, platform: Platform) -> str:
    """Remove URLs that are not the book's link (or any URL where links are not clickable)."""
    urls = extract_urls(sentence)
    if not urls:
        return sentence
    allowed = book.link if _link_in_text(book, platform) else ""
    foreign = [(s, e) for s, e, url in urls if not allowed or url.rstrip("/") != allowed.rstrip("/")]
    if not foreign:
        return sentence
    if book.title not in sentence:
        return ""  # a sentence built around a foreign link has nothing left to say
    for start, end in sorted(foreign, reverse=True):
        sentence = sentence[:start] + sentence[end:]
    return " ".join(sentence.split())


def _link_moved_to_profile(draft: Draft, book: Book) -> Draft:
    segments = [s for s in draft.segments if book.link not in s.text or book.title in s.text]
    segments = [
        Segment(" ".join(s.text.replace(book.link, "").split()), s.paragraph, s.required, s.drop_order)
        if book.link in s.text else s
        for s in segments
    ]
    last = max((s.paragraph for s in segments), default=0)
    segments.append(Segment(LINK_IN_PROFILE, last + 1, required=True))
    return Draft(
        segments=tuple(segments),
        hashtags=draft.hashtags,
        protected=draft.protected,
        note="link left out: the post could not fit with it; the post points to the link in profile",
    )


def make_llm_writer(
    provider: str, *, base_url: str | None, api_key: str | None, model: str | None, timeout: float,
    retries: dict[str, int] | None = None,
) -> LLMWriter:
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    policy = RetryPolicy(**(retries or {}))
    if provider == "openai":
        chat: ChatProvider = OpenAIChat(base_url=base_url, api_key=api_key, model=model, timeout=timeout,
                                        retries=policy)
    elif provider == "anthropic":
        chat = AnthropicMessages(base_url=base_url, api_key=api_key, model=model, timeout=timeout,
                                 retries=policy)
    else:
        raise ValueError(f"unknown LLM provider {provider!r}; expected 'openai' or 'anthropic'")
    return LLMWriter(chat)
