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
profile", and the post's note says why. So it is, for the rest of a platform's posts, once no
other distinct post with the link is left in the batch (rather than repeating one).

Sentences: a blurb sentence that leans on the one before it ("As she decodes
them, ...") only appears right after that one; hooks quote only sentences and
questions that stand alone.

Variety: plans cycle through angles in a seeded order, hooks and calls to action
varying first, and a hook already used in the call waits for the fresh ones; a
candidate whose rapidfuzz ratio to any earlier post of the batch (``avoid``
included) is above 90 is thinned of the pieces it shares, or skipped; a draft or
text already tried is skipped at once. Openings (the first words) already used
by a share of the batch wait until the fresh ones run out. When the book's own
tone runs out of fresh wording, the neighbouring tone is borrowed.

Speed: everything derived from the book is worked out once (profile, hooks,
sentences, tags, compact drafts), and lengths are summed from remembered
measures of each piece (``fitting.Gauge``) rather than recounted per candidate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import random
import string
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import regex

from jobs.platforms import Platform
from jobs.writers import templates as wording
from jobs.writers.fitting import (
    Draft,
    Fitted,
    Segment,
    fit,
    gauge_for,
    make_readable,
    paragraph_break,
    reads_easily,
)
from jobs.writers.hashtags import PREFERRED_COUNT, tag_pool
from jobs.writers.models import Book, Post, hash_once
from jobs.writers.phrasing import leans_on_previous, names_someone
from jobs.writers.profile import TIMELY_ANGLES, BookProfile, build_profile
from jobs.writers.quality import NEAR_DUPLICATE_RATIO, NearCopyIndex, max_similarity, near_copies

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
# Blurb sentences in one post at most: excerpts from different starting points, rather than
# the whole blurb every time, are what make the long posts of a batch differ.
_MAX_BODY_SENTENCES = 3
_FORMATTER = string.Formatter()
# A post's opening: its first three words. One opening may start at most one post in
# OPENING_SHARE of the batch (one in four) before the fresh ones are used up.
_OPENING_WORDS = regex.compile(r"[\p{L}\p{N}]+")
OPENING_SHARE = 4
# A hook whose plan made no new post (a repeat, a near-copy) is passed over from then on: on a
# tight platform the hook is most of the post, and the rest (call to action, tags) rarely saves it.
_HOOK_MISSES = 1

# Paragraph order inside a post.
_HOOK, _BODY, _EXTRA, _CTA = 0, 1, 2, 3
# Drop order of optional pieces: the highest goes first when space runs out.
_DROP_LAUNCH_LINE = 5
_DROP_FIRST_SENTENCE = 20
_DROP_EXTRA_LINE = 60


class Plan(NamedTuple):
    """One way to write a post (a named tuple: a batch makes thousands while looking for fresh ones)."""

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


@hash_once
@dataclass(frozen=True)
class Kit:
    """What every post of a book on one platform shares."""

    platform: Platform
    link_mode: LinkMode
    soft_limit: int  # comfortable length, the link measured as a short link
    tag_sets: tuple[tuple[str, ...], ...]  # by a plan's tag_shift


@dataclass
class _Batch:
    """The posts made so far in a batch, the texts already tried, and how posts opened."""

    produced: list[str]
    tried: set[str] = field(default_factory=set)
    openings: Counter[str] = field(default_factory=Counter)
    drafts: set[tuple] = field(default_factory=set)  # trimmed drafts already fitted
    misses: Counter[str] = field(default_factory=Counter)  # plans of a hook that made no new post

    def __post_init__(self) -> None:
        # The ``avoid`` texts (other platforms' posts) and this call's own posts, apart: a
        # candidate is most often close to a post of its own platform, so those are looked at first.
        self.earlier = NearCopyIndex(self.produced)
        self.own = NearCopyIndex()
        self.tried.update(self.produced)
        self.openings.update(opening(t) for t in self.produced)
        # The posts by their first line (the hook's paragraph): a candidate's likeliest near-copies
        # are the posts that open the same way (where a long link takes half of a post, nearly all are).
        self.by_opening_line: dict[str, list[str]] = {}
        for text in self.produced:
            self.by_opening_line.setdefault(_first_line(text), []).append(text)

    def near_copies(self, text: str) -> list[str]:
        return self.own.near_copies(text) or self.earlier.near_copies(text)

    def near_copies_opening_alike(self, text: str) -> list[str]:
        """The near-copies of ``text`` among the posts with the same first line: a few
        comparisons that settle most candidates before every post of a reachable length is compared."""
        alike = self.by_opening_line.get(_first_line(text))
        return near_copies(text, alike) if alike else []

    def crowded(self, text: str) -> bool:
        return self.openings[opening(text)] > len(self.produced) // OPENING_SHARE

    def add(self, text: str) -> None:
        self.by_opening_line.setdefault(_first_line(text), []).append(text)
        self.produced.append(text)
        self.own.add(text)
        self.tried.add(text)
        self.openings[opening(text)] += 1


def _first_line(text: str) -> str:
    return text.partition("\n")[0]


@lru_cache(maxsize=8192)  # every call of a batch looks at the earlier platforms' posts again
def opening(text: str) -> str:
    return " ".join(_OPENING_WORDS.findall(text[:80].casefold())[:3])


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
        batch = _Batch(list(avoid))
        made = 0
        kits = [_kit(profile, platform)]
        if kits[0].link_mode.kind == "link":
            # When no other distinct post with the link is left (a long link counted in full
            # takes half of a post, and a book with few words has few ways around it), the
            # rest point to the link in the profile: that leaves room for words.
            kits.append(_kit_link_in_profile(profile, platform))
        for kit in kits:
            crowded: list[tuple[Plan, Fitted]] = []
            # A hook this call has already used waits until the fresh ones are tried: on a tight
            # platform the hook is most of the post, and a fresh one reads as a new post anyway.
            used_hooks: set[str] = set()
            reused: list[Plan] = []
            batch.misses.clear()

            def attempt(plan: Plan, hook: str) -> Fitted | None:
                if batch.misses[hook] >= _HOOK_MISSES:
                    return None
                fitted = _realise(profile, kit, plan, batch)  # noqa: B023 - used within this kit's pass
                if fitted is None or fitted.text in batch.tried:
                    batch.misses[hook] += 1
                    return None
                if batch.crowded(fitted.text):
                    crowded.append((plan, fitted))  # noqa: B023
                    batch.tried.add(fitted.text)
                    return None
                fitted = _vet(fitted, kit, batch, profile.english)  # noqa: B023
                if fitted is None:
                    batch.misses[hook] += 1
                return fitted

            for fresh_only, plans in ((True, _plans(profile, rng)), (False, reused)):
                for plan in plans:
                    if "{line}" in plan.template and not profile.sentences:
                        continue
                    hook = _hook(profile, plan.template, plan.start, plan.theme_shift)
                    if fresh_only and hook in used_hooks:
                        reused.append(plan)
                        continue
                    fitted = attempt(plan, hook)
                    if fitted is None:
                        continue
                    used_hooks.add(hook)
                    yield self._post(platform, fitted, plan.angle, note)
                    made += 1
                    if made == count:
                        return
            for plan, fitted in crowded:
                vetted = _vet(fitted, kit, batch, profile.english, retried=True)
                if vetted is None:
                    continue
                yield self._post(platform, vetted, plan.angle, note)
                made += 1
                if made == count:
                    return
        # Every wording is used up (tiny profile, large count): the least similar compact post still helps.
        for _ in range(count - made):
            fitted = _last_resort(profile, kit, batch.produced, rng)
            batch.add(fitted.text)
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


def _realise(profile: BookProfile, kit: Kit, plan: Plan, batch: _Batch) -> Fitted | None:
    """The plan's post, or None when it cannot be written or would repeat a draft already tried."""
    draft = _compose(profile, kit, plan)
    # Trim to a comfortable length with the hashtags still on; fit() then enforces the hard rules.
    draft = _trim_to(draft, kit)
    # On a tight platform many plans trim down to the same draft: fitting it again would
    # only make a text already tried.
    key = (draft.segments, draft.hashtags, plan.tone)
    if key in batch.drafts:
        return None
    batch.drafts.add(key)
    fitted = fit(draft, kit.platform, _alternatives(profile, kit, plan.tone, draft.hashtags))
    if fitted is None:
        return None
    if profile.english:
        return make_readable(fitted, kit.platform)
    return fitted


def _vet(fitted: Fitted, kit: Kit, batch: _Batch, english: bool, retried: bool = False) -> Fitted | None:
    """The post, or a thinned one, when it is no near-copy of the batch's; it is then added to the batch.

    Nothing is added before its text has been compared with every post of the batch of a reachable
    length; those that open the same way are only looked at first (often they settle it)."""
    rivals = batch.near_copies_opening_alike(fitted.text) or batch.near_copies(fitted.text)
    if not rivals:
        batch.add(fitted.text)
        return fitted
    # Thin it against the posts it is close to; that can bring it close to others, so once more.
    for _ in range(2):
        thinned = _distinguish(fitted, kit.platform, rivals, english)
        if thinned is None or (thinned.text in batch.tried and not retried):
            return None
        batch.tried.add(thinned.text)
        more = batch.near_copies_opening_alike(thinned.text) or (
            batch.own.near_copies(thinned.text) + batch.earlier.near_copies(thinned.text))
        if not more:
            batch.add(thinned.text)
            return thinned
        fitted, rivals = thinned, list(dict.fromkeys([*rivals, *more]))
    return None


def _stable_seed(seed: int, book: Book, platform: Platform, today: dt.date) -> int:
    # hash() of a str changes between processes; the seed must not.
    key = f"{seed}|{platform.name}|{platform.limit}|{book.title}|{book.author}|{today.isoformat()}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _usable(template: str, slots: dict[str, str]) -> bool:
    fields = [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]
    return all(slots.get(name) for name in fields)


@lru_cache(maxsize=1024)
def _hook_templates(profile: BookProfile, angle: str, tone: str) -> tuple[str, ...]:
    slots = profile.slots(line="x")
    found = []
    for template in wording.HOOKS[angle][tone]:
        if not profile.book.author:
            template = template.replace(" by {author}", "")
        if _usable(template, slots):
            found.append(template)
    return tuple(found)


def _plans(profile: BookProfile, rng: random.Random) -> Iterator[Plan]:
    """Plans in a seeded order: the book's tone and its neighbour first, then the other two.

    Each tone's plans come in rounds. A round holds every hook and call to action of the
    tone once (with seeded blurb windows, tags and themes), cycling through the angles so
    consecutive posts differ in kind; later rounds vary windows, tags and themes. On a
    tight platform those are trimmed away, so the next tone's first round comes before them.
    """
    own = profile.book.tone
    neighbour = wording.NEIGHBOUR_TONE[own]
    for tones in ((own, neighbour), tuple(t for t in wording.COMPACT_HOOKS if t not in (own, neighbour))):
        rounds = [_tone_rounds(profile, tone, rng) for tone in tones]
        while rounds:
            for tone_rounds in list(rounds):
                plans = next(tone_rounds, None)
                if plans is None:
                    rounds.remove(tone_rounds)
                else:
                    yield from plans


def _tone_rounds(profile: BookProfile, tone: str, rng: random.Random) -> Iterator[Iterator[Plan]]:
    angles = profile.angles()
    rng.shuffle(angles)
    timely = [a for a in angles if a in TIMELY_ANGLES]
    if timely:
        angles.remove(timely[0])
        angles.insert(rng.randrange(0, 2), timely[0])
    windows = profile.openers[:_MAX_WINDOWS] or (0,)
    others = list(itertools.product(windows, range(3), range(2)))
    rng.shuffle(others)
    per_angle: list[tuple[str, list[tuple[str, int]], int]] = []
    for angle in angles:
        combos = [(template, cta) for template in _hook_templates(profile, angle, tone) for cta in range(3)]
        if combos:
            rng.shuffle(combos)
            per_angle.append((angle, combos, rng.randrange(len(others))))
    for round_ in range(len(others)):
        # One plan per angle in turn; plans are made as they are asked for (a post or two
        # often needs only the first few).
        queues = [_angle_round(angle, tone, combos, others, offset + round_) for angle, combos, offset in per_angle]
        yield (plan for group in itertools.zip_longest(*queues) for plan in group if plan is not None)


def _angle_round(angle: str, tone: str, combos: list[tuple[str, int]], others: list[tuple[int, int, int]],
                 shift: int) -> Iterator[Plan]:
    for i, (template, cta) in enumerate(combos):
        start, tag_shift, theme_shift = others[(i + shift) % len(others)]
        yield Plan(angle, tone, template, start, cta, tag_shift, theme_shift)


@lru_cache(maxsize=256)
def _kit(profile: BookProfile, platform: Platform) -> Kit:
    mode = _link_mode(profile, platform)
    soft = min(SOFT_LENGTH.get(platform.name, platform.limit), platform.limit)
    if mode.kind == "link":
        # A very long URL should not crowd out the words, which are what make posts of a batch differ.
        soft += max(0, gauge_for(platform).piece(profile.book.link)[0] - SHORT_LINK_LENGTH)
    wanted = PREFERRED_COUNT.get(platform.name, 2)
    if platform.max_hashtags is not None:
        wanted = min(wanted, platform.max_hashtags)
    book = profile.book
    pool = tag_pool(book.genre, profile.keywords, book.title, platform.name)
    return Kit(platform, mode, soft, tuple(_hashtags(pool, wanted, shift) for shift in range(3)))


@lru_cache(maxsize=256)
def _kit_link_in_profile(profile: BookProfile, platform: Platform) -> Kit:
    """The kit for posts that point to the link in the profile once none with it is left."""
    soft = min(SOFT_LENGTH.get(platform.name, platform.limit), platform.limit)
    note = ("link left out: no other distinct post with it was left in this batch; "
            "the post points to the link in profile")
    return Kit(platform, LinkMode("profile", note), soft, _kit(profile, platform).tag_sets)


def _link_mode(profile: BookProfile, platform: Platform) -> LinkMode:
    link = profile.book.link
    if not link:
        return LinkMode("none")
    if not platform.links_clickable:
        return LinkMode("bio")
    probe = _compact_draft(profile, profile.book.tone, _cta_text("link", profile.book.tone, 1, link), ())
    if platform.fits(probe.render(paragraph_break(platform))):
        return LinkMode("link")
    return LinkMode(
        "profile",
        f"link left out: it alone is too long for {platform.label} "
        f"({platform.count(link)} of {platform.limit}); the post points to the link in profile",
    )


def _cta_text(kind: str, tone: str, index: int, link: str) -> str:
    table = {
        "link": wording.CTA_LINK,
        "bio": wording.CTA_LINK_IN_BIO,
        "profile": wording.CTA_LINK_IN_PROFILE,
        "none": wording.CTA_NO_LINK,
    }[kind]
    options = table[tone]
    return options[index % len(options)].format(link=link)


def _compose(profile: BookProfile, kit: Kit, plan: Plan) -> Draft:
    book = profile.book
    segments = (
        _required(_hook(profile, plan.template, plan.start, plan.theme_shift), _HOOK),
        # Excerpts of one to three sentences, so the long posts of a batch differ in length too.
        *_body(profile, plan.template, plan.start, 1 + (plan.cta + plan.tag_shift) % _MAX_BODY_SENTENCES),
        *_extra_lines(profile, plan.angle, plan.tone, "hemes}" in plan.template, plan.cta + plan.theme_shift,
                      plan.theme_shift),
        _required(_cta_text(kit.link_mode.kind, plan.tone, plan.cta, book.link), _CTA),
    )
    return Draft(
        segments=segments,
        hashtags=kit.tag_sets[plan.tag_shift],
        protected=_protected(book),
        note=kit.link_mode.note if kit.link_mode.kind == "profile" else "",
    )


@lru_cache(maxsize=8192)
def _required(text: str, paragraph: int) -> Segment:
    """One segment object per hook or call to action: its measures are remembered by segment."""
    return Segment(text, paragraph, required=True)


@lru_cache(maxsize=8192)
def _hook(profile: BookProfile, template: str, start: int, theme_shift: int) -> str:
    line = profile.sentences[start % len(profile.sentences)] if "{line}" in template else ""
    return template.format(**profile.slots(line=line, theme_shift=theme_shift))


@lru_cache(maxsize=4096)
def _body(profile: BookProfile, template: str, start: int, span: int) -> tuple[Segment, ...]:
    """Up to ``span`` blurb sentences from ``start`` on, less those the hook quotes; a sentence
    that leans on the one before it only where that one comes right before it."""
    sentences = profile.sentences
    quoted: set[int] = set()
    if "{line}" in template:
        quoted.add(start % len(sentences))
    if "{question}" in template:
        quoted.add(sentences.index(profile.questions[0]))
    # After a hook that ends with the quoted sentence, the next one reads on from it.
    follows_hook = template.endswith("{line}")
    segments: list[Segment] = []
    previous_kept = False
    # A leaning sentence also needs the start of its run to say who it is about (or be the
    # blurb's first sentence): "Every name on the ledger is gone. Her boss..." leaves "her" to no one.
    head_names = False
    for i in range(start, len(sentences)):
        if len(segments) == span:
            break
        leans = leans_on_previous(sentences[i]) if i > 0 else False
        if not leans:
            head_names = i == 0 or names_someone(sentences[i])
        if i in quoted:
            previous_kept = follows_hook and not segments
            continue
        if leans and not (previous_kept and head_names):
            previous_kept = False
            continue
        segments.append(Segment(sentences[i], _BODY, drop_order=_DROP_FIRST_SENTENCE + len(segments), leans=leans))
        previous_kept = True
    return tuple(segments)


@lru_cache(maxsize=4096)
def _extra_lines(profile: BookProfile, angle: str, tone: str, hook_has_themes: bool, pick: int,
                 theme_shift: int) -> tuple[Segment, ...]:
    """One context line that neither repeats the hook's angle nor restates what it already says,
    and the launch date. One line, a different one from post to post, reads better than every
    line in every post, and keeps the posts of a batch apart."""
    slots = profile.slots(theme_shift=theme_shift)
    lines: list[Segment] = []
    wanted: list[str] = []
    blurb = profile.book.blurb.casefold()
    fresh_themes = any(t.casefold() not in blurb for t in profile.themes)
    if angle not in ("readers_who", "behind_the_scenes") and not hook_has_themes and fresh_themes:
        wanted.append("themes")
    if angle != "readers_who":
        wanted.append("audience")
    if angle != "comparables":
        wanted.append("comps")
    for offset, kind in enumerate(wanted):
        options = [t for t in wording.EXTRA_LINES[kind][tone] if _usable(t, slots)]
        if options:
            text = options[pick % len(options)].format(**slots)
            lines.append(Segment(text, _EXTRA, drop_order=_DROP_EXTRA_LINE + offset))
    if lines:
        lines = [lines[pick % len(lines)]]
    launch_kind = {"future": "launch_future", "today": "launch_today", "past": "launch_past"}.get(profile.phase)
    if launch_kind and angle not in ("launch_countdown", "release_day", "review_request"):
        options = [t for t in wording.EXTRA_LINES[launch_kind][tone] if _usable(t, slots)]
        if options and (profile.phase != "past" or (profile.days_to_launch or 0) >= -90):
            lines.append(Segment(options[0].format(**slots), _EXTRA, drop_order=_DROP_LAUNCH_LINE))
    return tuple(lines)


def _hashtags(pool: tuple[str, ...], count: int, tag_shift: int) -> tuple[str, ...]:
    if not pool or count <= 0:
        return ()
    # The first (genre) tag stays; the rest rotate so posts of a batch differ.
    rest = pool[1:]
    shift = tag_shift % len(rest) if rest else 0
    return (pool[0], *(rest[shift:] + rest[:shift]))[:count]


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


@lru_cache(maxsize=4096)
def _alternatives(profile: BookProfile, kit: Kit, tone: str, tags: tuple[str, ...]) -> tuple[Draft, ...]:
    """Shorter drafts for when the planned one cannot fit: compact hook, then the link moved to the profile."""
    book = profile.book
    link_mode = kit.link_mode
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
    return tuple(drafts)


def _trim_to(draft: Draft, kit: Kit) -> Draft:
    """Drop optional pieces until the post is within a comfortable length (tags kept)."""
    return gauge_for(kit.platform).shrink(draft, kit.soft_limit, tags_first=False) or draft


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
    if english and not reads_easily(current, platform):
        return None
    return current


def _last_resort(profile: BookProfile, kit: Kit, produced: list[str], rng: random.Random) -> Fitted:
    candidates: list[Fitted] = []
    for tone in wording.COMPACT_HOOKS:
        for i in range(3):
            draft = _compact_draft(profile, tone, _cta_text(kit.link_mode.kind, tone, i, profile.book.link), ())
            fitted = fit(draft, kit.platform, _alternatives(profile, kit, tone, ()))
            if fitted is not None:
                candidates.append(fitted)
    if not candidates:
        title = profile.book.title
        return Fitted(title, Draft((Segment(title, _HOOK, required=True),), note="only the title fits this platform"))
    rng.shuffle(candidates)
    return min(candidates, key=lambda f: max_similarity(f.text, produced))
