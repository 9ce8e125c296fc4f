"""Sentence splitting, tidying, tags and readability helpers."""

from __future__ import annotations

from jobs.writers.readability import flesch_reading_ease, looks_english, syllables
from jobs.writers.text import camel_tag, split_sentences, tidy, with_article


def test_split_sentences_keeps_abbreviations_and_initials() -> None:
    text = 'Dr. J. R. Smith met Mr. Brown at 5 p.m. on the quay. "Run!" she said. Then... nothing? Next day.'
    assert split_sentences(text) == [
        "Dr. J. R. Smith met Mr. Brown at 5 p.m. on the quay.",
        '"Run!" she said.',
        "Then... nothing?",
        "Next day.",
    ]


def test_split_sentences_cjk_and_paragraphs() -> None:
    assert split_sentences("東京の夜。雨が降る！そして\n\nA new line") == ["東京の夜。", "雨が降る！", "そして", "A new line"]


def test_tidy_fixes_joins_but_not_protected_spans() -> None:
    title, link = "Who Did It?", "https://x.com/a..b"
    assert tidy(f"Meet {title} . by  X , here ( ) ok!. {link}", [title, link]) == f"Meet {title} by X, here ok! {link}"
    assert tidy("Hello ,world ;; and.. more ...") == "Hello,world; and. more…"


def test_camel_tags() -> None:
    assert camel_tag("found family") == "FoundFamily"
    assert camel_tag("enemies-to-lovers") == "EnemiesToLovers"
    assert camel_tag("don't stop") == "DontStop"
    assert camel_tag("YA fantasy") == "YAFantasy"
    assert camel_tag("図書館") == "図書館"
    assert camel_tag("1999") is None and camel_tag("") is None


def test_articles() -> None:
    assert with_article("epic fantasy read") == "an epic fantasy read"
    assert with_article("fantasy read") == "a fantasy read"
    assert with_article("unicorn story") == "a unicorn story"
    assert with_article("hour-long read") == "an hour-long read"


def test_readability_scale() -> None:
    assert flesch_reading_ease("The cat sat on the mat. It was warm. We all had tea.") > 90
    dense = ("Institutional epistemological considerations necessitate comprehensive reconsideration "
             "of organizational infrastructural methodologies.")
    assert flesch_reading_ease(dense) < 0
    assert flesch_reading_ease("#Hashtags https://example.com/only") == 100.0
    assert syllables("dragon") == 2 and syllables("the") == 1 and syllables("strength") == 1


def test_language_guess() -> None:
    assert looks_english("When the last dragon falls silent, Mira must climb into the mountains.")
    assert not looks_english("星が降る夜にだけ開く図書館がある。")



def test_text_tidy_leaves_alone_needs_no_substitution() -> None:
    """tidy skips its substitutions when its quick search finds nothing for them to change:
    checked on random texts of the characters they act on, spaced as tidy spaces them."""
    import random

    from jobs.writers.text import _UNTIDY, _substitute

    rng = random.Random(7)
    alphabet = list("ab ,.!?;:%…()[]」』）\n\t") + ["  ", "\n\n", "\n\n\n"]
    skipped = 0
    for _ in range(20_000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        text = "\n".join(" ".join(line.split()) for line in raw.split("\n"))
        if not _UNTIDY.search(text):
            skipped += 1
            assert _substitute(text, []) == text.strip(), repr(text)
    assert skipped > 1_000
