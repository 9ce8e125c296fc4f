"""The near-copy index (texts in reach by length) finds what comparing a text with every other one finds."""

from __future__ import annotations

import random

from rapidfuzz import fuzz

from jobs.writers.quality import NEAR_DUPLICATE_RATIO, NearCopyIndex, near_copies

LINK = "https://www.example-bookstore.com/books/a-novel/9781234567890?utm_source=social&ref=abc123"
WORDS = ("the dragon sea light winter island keeper secret ledger storm grief hope cat "
         "Mira found family old magic 東京 夜 雨 ✨ 📚 café naïve — #Fantasy #Books").split()


def _text(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 40))]
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words) + 1), LINK)
    return " ".join(words)


def _variant(rng: random.Random, text: str) -> str:
    """A text close to ``text``: a few characters dropped, changed or added."""
    chars = list(text)
    for _ in range(rng.randint(0, max(1, len(chars) // 8))):
        at = rng.randrange(len(chars) + 1)
        kind = rng.random()
        if kind < 0.4 and at < len(chars):
            del chars[at]
        elif kind < 0.7 and at < len(chars):
            chars[at] = rng.choice("aeiou .,")
        else:
            chars.insert(at, rng.choice("xyz!?"))
    return "".join(chars)


def test_index_finds_exactly_the_near_copies_of_a_full_comparison() -> None:
    rng = random.Random(3)
    for _ in range(30):
        texts: list[str] = []
        for _ in range(rng.randint(0, 60)):
            texts.append(_variant(rng, rng.choice(texts)) if texts and rng.random() < 0.5 else _text(rng))
        index = NearCopyIndex(texts[: len(texts) // 2])
        for text in texts[len(texts) // 2:]:
            index.add(text)
        for _ in range(20):
            probe = _variant(rng, rng.choice(texts)) if texts and rng.random() < 0.7 else _text(rng)
            found = index.near_copies(probe)
            # Every text above the ratio, as a full comparison finds them; none below it (one
            # exactly at it may come back: rapidfuzz's cut-off is not strict to the last digit).
            assert {t for t in texts if fuzz.ratio(probe, t) > NEAR_DUPLICATE_RATIO} <= set(found)
            assert set(found) <= set(near_copies(probe, texts))
            assert all(fuzz.ratio(probe, t) >= NEAR_DUPLICATE_RATIO for t in found)
