"""The default writer: builds posts from the book's own words, with no network and no keys.

Deterministic: the same book, platform, count, seed, day and ``avoid`` list give
the same posts. Each post is a hook (one angle, in the book's tone), some
blurb sentences and context lines, a call to action and hashtags.

Length is handled in two steps. Composition trims optional lines until the
post sits at a comfortable length for the platform with its hashtags still on
(a very long URL is measured as a short link here, so it does not crowd out
the words). Fitting (``fitting.fit``) then enforces the hard rules by dropping
hashtags first, then optional sentences, and finally falling back to a compact
hook; titles, links and words are never cut.

Links: where links are not clickable (Instagram, TikTok) the call to action
says "link in bio" and the text holds no URL. Where the link alone cannot fit
beside the title (a 600-character URL on Bluesky or Threads, which count every
character of it), the link is left out, the call to action says "link in
profile", and the post's note says why.

Variety: plans cycle through angles in a seeded order; a candidate whose
rapidfuzz ratio to any earlier post of the batch (``avoid`` included) is above
90 is thinned of the pieces it shares, or skipped. When the book's own tone
runs out of fresh wording, the neighbouring tone is borrowed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from jobs.platforms import Platform
from jobs.writers import templates as wording
from jobs.writers.fitting import Draft, Fitted, Segment, fit, make_readable, paragraph_break
from jobs.writers.hashtags import PREFERRED_COUNT, tag_pool
from jobs.writers.models import Book, Post
from jobs.writers.profile import TIMELY_ANGLES, BookProfile, build_profile
from jobs.writers.quality import NEAR_DUPLICATE_RATIO, is_near_duplicate, max_similarity, readable_enough

NAME = "offline"
# Posts a little under a long platform's hard limit read better and leave
# room for variety; the hard limit still decides what fits.
SOFT_LENGTH: dict[str, int] = {
    "facebook": 650,
    "linkedin": 900,
    "instagram": 700,
    "tiktok": 400,
    "threads": 450,
    "mastodon": 480,
}
SHORT_LINK_LENGTH = 23  # what a link shortener or X's t.co would make of any URL
_MAX_WINDOWS = 4  # distinct blurb starting points tried per angle
_FORMATTER = string.Formatter()

# Paragraph order inside a post.
_HOOK, _BODY, _EXTRA, _CTA = 0, 1, 2, 3
# Drop order of optional pieces: the highest goes first when space runs out.
_DROP_LAUNCH_LINE = 5
_DROP_FIRST_SENTENCE = 20
_DROP_EXTRA_LINE = 60


@dataclass(frozen=True)
class Plan:
    angle: str
    tone: str
    template: str
    start: int  # index of the first blurb sentence used
    cta: int
    tag_shift: int
    theme_shift: int


@dataclass(frozen=True)
class LinkMode:
    kind: str  # "link" | "bio" | "profile" | "none"
    note: str = ""


class OfflineWriter:
    name = NAME

    def __repr__(self) -> str:
        return "OfflineWriter()"

    def write_batch(
        self,
        book: Book,
        platform: Platform,
        count: int,
        *,
        seed: int,
        today: dt.date,
        avoid: Sequence[str] = (),
        note: str = "",
    ) -> Iterator[Post]:
        """Yield ``count`` posts; ``note`` is copied to each post (used by fallbacks to say why)."""
        if count <= 0:
            return
        profile = build_profile(book, today)
        if not platform.fits(book.title):
            # Nothing can be written without cutting the title, which is never done.
            reason = f"the title alone exceeds {platform.label}'s limit of {platform.limit}"
            for _ in range(count):
                yield self._post(platform, Fitted(book.title, Draft(())), "spotlight", note, extra=reason)
            return
        rng = random.Random(_stable_seed(seed, book, platform, today))
        link_mode = _link_mode(profile, platform)
        produced = list(avoid)
        made = 0
        tones = (book.tone, wording.NEIGHBOUR_TONE[book.tone])
        for tone in tones:
            for plan in _plans(profile, tone, rng):
                fitted = self._realise(profile, platform, plan, link_mode)
                if fitted is not None and is_near_duplicate(fitted.text, produced):
                    fitted = _distinguish(fitted, platform, produced, profile.english)
                if fitted is None:
                    continue
                produced.append(fitted.text)
                made += 1
                yield self._post(platform, fitted, plan.angle, note)
                if made == count:
                    return
        # Every wording is used up (tiny profile, large count): the least similar compact post still helps.
        for _ in range(count - made):
            fitted = _last_resort(profile, platform, link_mode, produced, rng)
            produced.append(fitted.text)
            yield self._post(platform, fitted, "spotlight", note, extra="few distinct wordings left")

    def _post(self, platform: Platform, fitted: Fitted, angle: str, note: str, extra: str = "") -> Post:
        notes = [n for n in (note, fitted.draft.note, extra) if n]
        return Post(
            platform=platform.name,
            text=fitted.text,
            length=platform.count(fitted.text),
            limit=platform.limit,
            writer=self.name,
            angle=angle,
            note="; ".join(dict.fromkeys(notes)),
        )

    def _realise(self, profile: BookProfile, platform: Platform, plan: Plan, link_mode: LinkMode) -> Fitted | None:
        draft = _compose(profile, platform, plan, link_mode)
        if draft is None:
            return None
        # Trim to a comfortable length with the hashtags still on; fit() then enforces the hard rules.
        soft = min(SOFT_LENGTH.get(platform.name, platform.limit), platform.limit)
        draft = _trim_to(draft, platform, soft, profile.book.link if link_mode.kind == "link" else "")
        fitted = fit(draft, platform, _alternatives(profile, plan.tone, link_mode, draft.hashtags))
        if fitted is None:
            return None
        if profile.english:
            return make_readable(fitted, platform)
        return fitted


def _stable_seed(seed: int, book: Book, platform: Platform, today: dt.date) -> int:
    # hash() of a str changes between processes; the seed must not.
    key = f"{seed}|{platform.name}|{platform.limit}|{book.title}|{book.author}|{today.isoformat()}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _usable(template: str, slots: dict[str, str]) -> bool:
    fields = [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]
    return all(slots.get(name) for name in fields)


def _hook_templates(profile: BookProfile, angle: str, tone: str) -> list[str]:
    slots = profile.slots(line="x")
    found = []
    for template in wording.HOOKS[angle][tone]:
        if not profile.book.author:
            template = template.replace(" by {author}", "")
        if _usable(template, slots):
            found.append(template)
    return found


def _plans(profile: BookProfile, tone: str, rng: random.Random) -> Iterator[Plan]:
    """Plans in a seeded order, cycling through angles so consecutive posts differ in kind."""
    angles = profile.angles()
    rng.shuffle(angles)
    timely = [a for a in angles if a in TIMELY_ANGLES]
    if timely:
        angles.remove(timely[0])
        angles.insert(rng.randrange(0, 2), timely[0])
    windows = profile.openers[:_MAX_WINDOWS] or (0,)
    queues: list[list[Plan]] = []
    for angle in angles:
        plans = [
            Plan(angle, tone, template, start, cta, tag_shift, theme_shift)
            for template in _hook_templates(profile, angle, tone)
            for start, cta, tag_shift, theme_shift in itertools.product(windows, range(3), range(3), range(2))
        ]
        rng.shuffle(plans)
        if plans:
            queues.append(plans)
    for round_ in itertools.count():
        live = [q for q in queues if round_ < len(q)]
        if not live:
            return
        for queue in live:
            yield queue[round_]


def _link_mode(profile: BookProfile, platform: Platform) -> LinkMode:
    link = profile.book.link
    if not link:
        return LinkMode("none")
    if not platform.links_clickable:
        return LinkMode("bio")
    probe = _compact_draft(profile, profile.book.tone, _cta_text("link", profile.book.tone, 1, link), ())
    if _fits_without_tags(probe, platform):
        return LinkMode("link")
    return LinkMode(
        "profile",
        f"link left out: it alone is too long for {platform.label} "
        f"({platform.count(link)} of {platform.limit}); the post points to the link in profile",
    )


def _fits_without_tags(draft: Draft, platform: Platform) -> bool:
    return platform.fits(draft.render(paragraph_break(platform)))


def _cta_text(kind: str, tone: str, index: int, link: str) -> str:
    table = {
        "link": wording.CTA_LINK,
        "bio": wording.CTA_LINK_IN_BIO,
        "profile": wording.CTA_LINK_IN_PROFILE,
        "none": wording.CTA_NO_LINK,
    }[kind]
    options = table[tone]
    return options[index % len(options)].format(link=link)


def _compose(profile: BookProfile, platform: Platform, plan: Plan, link_mode: LinkMode) -> Draft | None:
    book = profile.book
    sentences = profile.sentences
    teaser_line = ""
    if "{line}" in plan.template:
        if not sentences:
            return None
        teaser_line = sentences[plan.start % len(sentences)]
    slots = profile.slots(line=teaser_line, theme_shift=plan.theme_shift)
    template = plan.template if book.author else plan.template.replace(" by {author}", "")
    hook = template.format(**slots)
    segments = [Segment(hook, _HOOK, required=True)]
    # A question hook built from a blurb question must not repeat it in the body.
    skip = {teaser_line, slots.get("question", "") if "{question}" in template else ""}
    openers = {sentences[i] for i in profile.openers}
    body = [s for s in sentences[plan.start :] if s not in skip]
    segments += [
        Segment(s, _BODY, drop_order=_DROP_FIRST_SENTENCE + i, leans=i > 0 and s not in openers)
        for i, s in enumerate(body)
    ]
    segments += _extra_lines(profile, plan, slots)
    segments.append(Segment(_cta_text(link_mode.kind, plan.tone, plan.cta, book.link), _CTA, required=True))
    return Draft(
        segments=tuple(segments),
        hashtags=tuple(_hashtags(profile, platform, plan)),
        protected=_protected(book),
        note=link_mode.note if link_mode.kind == "profile" else "",
    )


def _extra_lines(profile: BookProfile, plan: Plan, slots: dict[str, str]) -> list[Segment]:
    """Context lines that neither repeat the hook's angle nor restate what it already says."""
    lines: list[Segment] = []
    wanted: list[str] = []
    blurb = profile.book.blurb.casefold()
    fresh_themes = any(t.casefold() not in blurb for t in slots.get("themes", "").replace(" and ", ", ").split(", "))
    if plan.angle not in ("readers_who", "behind_the_scenes") and "{themes}" not in plan.template and fresh_themes:
        wanted.append("themes")
    if plan.angle != "readers_who":
        wanted.append("audience")
    if plan.angle != "comparables":
        wanted.append("comps")
    for offset, kind in enumerate(wanted):
        options = [t for t in wording.EXTRA_LINES[kind][plan.tone] if _usable(t, slots)]
        if options:
            text = options[(plan.cta + plan.theme_shift) % len(options)].format(**slots)
            lines.append(Segment(text, _EXTRA, drop_order=_DROP_EXTRA_LINE + offset))
    launch_kind = {"future": "launch_future", "today": "launch_today", "past": "launch_past"}.get(profile.phase)
    if launch_kind and plan.angle not in ("launch_countdown", "release_day", "review_request"):
        options = [t for t in wording.EXTRA_LINES[launch_kind][plan.tone] if _usable(t, slots)]
        if options and (profile.phase != "past" or (profile.days_to_launch or 0) >= -90):
            lines.append(Segment(options[0].format(**slots), _EXTRA, drop_order=_DROP_LAUNCH_LINE))
    return lines


def _hashtags(profile: BookProfile, platform: Platform, plan: Plan) -> list[str]:
    pool = tag_pool(profile.book.genre, profile.phrases, platform.name)
    wanted = PREFERRED_COUNT.get(platform.name, 2)
    if platform.max_hashtags is not None:
        wanted = min(wanted, platform.max_hashtags)
    if not pool or wanted <= 0:
        return []
    # The first (genre) tag stays; the rest rotate so posts of a batch differ.
    rest = pool[1:]
    shift = plan.tag_shift % len(rest) if rest else 0
    return [pool[0], *(rest[shift:] + rest[:shift])][:wanted]


def _protected(book: Book) -> tuple[str, ...]:
    return tuple(p for p in (book.title, book.link, book.author) if p)


def _compact_draft(profile: BookProfile, tone: str, cta: str, tags: Sequence[str], note: str = "") -> Draft:
    book = profile.book
    template = wording.COMPACT_HOOKS[tone]
    if not book.author:
        template = template.replace(" by {author}", "")
    hook = template.format(title=book.title, author=book.author)
    return Draft(
        segments=(Segment(hook, _HOOK, required=True), Segment(cta, _CTA, required=True)),
        hashtags=tuple(tags),
        protected=_protected(book),
        note=note,
    )


def _alternatives(profile: BookProfile, tone: str, link_mode: LinkMode, tags: Sequence[str]) -> list[Draft]:
    """Shorter drafts for when the planned one cannot fit: compact hook, then the link moved to the profile."""
    book = profile.book
    drafts = [
        _compact_draft(profile, tone, _cta_text(link_mode.kind, tone, i, book.link), tags, link_mode.note)
        for i in range(3)
    ]
    if link_mode.kind == "link":
        note = "link left out: the post could not fit with it; the post points to the link in profile"
        drafts += [_compact_draft(profile, tone, _cta_text("profile", tone, 0, book.link), (), note)]
    drafts.append(
        Draft(segments=(Segment(book.title, _HOOK, required=True),), protected=_protected(book),
              note="only the title fits this platform")
    )
    return drafts


def _trim_to(draft: Draft, platform: Platform, soft_limit: int, link: str) -> Draft:
    """Drop optional pieces until the post is within a comfortable length (tags kept).

    The link is measured as a short link would be: a very long URL should not
    crowd out the words, which are what make posts of a batch differ.
    """
    breaker = paragraph_break(platform)

    def comfortable(text: str) -> bool:
        measured = text.replace(link, "x" * SHORT_LINK_LENGTH) if link else text
        return platform.count(measured) <= soft_limit and platform.fits(text)

    while not comfortable(draft.render(breaker)):
        optional = draft.optional()
        if not optional:
            break
        draft = draft.without(max(reversed(optional), key=lambda s: s.drop_order))
    return draft


def _distinguish(fitted: Fitted, platform: Platform, produced: list[str], english: bool) -> Fitted | None:
    """Drop the optional pieces shared with earlier posts until the post is no near-copy; None if that fails.

    Removing text that two posts share always lowers their similarity ratio, so
    greedily dropping the piece that lowers it most converges quickly.
    """
    breaker = paragraph_break(platform)
    current, score = fitted, max_similarity(fitted.text, produced)
    while score > NEAR_DUPLICATE_RATIO:
        options = [Fitted(d.render(breaker), d) for d in (current.draft.without(s) for s in current.draft.optional())]
        if not options:
            return None
        best_score, best = min(((max_similarity(f.text, produced), f) for f in options), key=lambda pair: pair[0])
        if best_score >= score:
            return None
        current, score = best, best_score
    if english and not readable_enough(current.text):
        return None
    return current


def _last_resort(
    profile: BookProfile, platform: Platform, link_mode: LinkMode, produced: list[str], rng: random.Random
) -> Fitted:
    candidates: list[Fitted] = []
    for tone in wording.COMPACT_HOOKS:
        for i in range(3):
            draft = _compact_draft(profile, tone, _cta_text(link_mode.kind, tone, i, profile.book.link), ())
            fitted = fit(draft, platform, _alternatives(profile, tone, link_mode, ()))
            if fitted is not None:
                candidates.append(fitted)
    if not candidates:
        title = profile.book.title
        return Fitted(title, Draft((Segment(title, _HOOK, required=True),), note="only the title fits this platform"))
    rng.shuffle(candidates)
    return min(candidates, key=lambda f: max_similarity(f.text, produced))
