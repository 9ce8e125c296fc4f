"""The shared fitting routine: hashtags go first, then optional sentences; nothing is ever cut."""

from __future__ import annotations

from jobs.platforms import PLATFORMS, extract_hashtags
from jobs.writers.fitting import Draft, Segment, fit, within_hashtag_cap

TITLE = "The Glass Orchard"
LINK = "https://books.example.com/glass-orchard"
X = PLATFORMS["twitter"]


def draft(*optional: str, tags: tuple[str, ...] = ()) -> Draft:
    segments = [Segment(f"Meet {TITLE} by Ann Lee.", 0, required=True)]
    segments += [Segment(text, 1, drop_order=i) for i, text in enumerate(optional)]
    segments.append(Segment(f"Read more: {LINK}", 2, required=True))
    return Draft(tuple(segments), hashtags=tags, protected=(TITLE, LINK))


def test_a_post_that_fits_is_left_alone() -> None:
    fitted = fit(draft("A short line.", tags=("Fantasy",)), X)
    assert fitted is not None
    assert fitted.text == f"Meet {TITLE} by Ann Lee.\nA short line.\nRead more: {LINK}\n#Fantasy"


def test_hashtags_are_dropped_before_any_sentence() -> None:
    sentence = "An orchard of glass trees grows where the old town burned down years ago."
    tags = ("Fantasy", "Orchards", "GlassTrees", "Magic", "CosyFantasy", "Books", "Reading", "TBR", "AmReading",
            "BookTwitter")
    full = draft(sentence, "Its fruit shows each picker one true thing about themselves.", tags=tags)
    assert X.count(full.render("\n")) > 280
    fitted = fit(full, X)
    assert fitted is not None and X.fits(fitted.text)
    assert sentence in fitted.text  # sentences kept ...
    assert len(fitted.draft.hashtags) < len(tags)  # ... because tags went first
    assert list(fitted.draft.hashtags) == list(tags[: len(fitted.draft.hashtags)])  # from the end


def test_then_optional_sentences_go_by_drop_order_whole() -> None:
    sentences = [f"Sentence number {i} tells a little more of the story here." for i in range(8)]
    fitted = fit(draft(*sentences, tags=("Fantasy",)), X)
    assert fitted is not None and X.fits(fitted.text)
    assert extract_hashtags(fitted.text) == []
    kept = [s for s in sentences if s in fitted.text]
    assert kept == sentences[: len(kept)] and 0 < len(kept) < len(sentences)
    assert TITLE in fitted.text and LINK in fitted.text


def test_required_text_is_never_cut() -> None:
    huge = Draft((Segment("word " * 80 + TITLE, 0, required=True),), protected=(TITLE,))
    assert fit(huge, X) is None
    fallback = Draft((Segment(f"{TITLE}.", 0, required=True),), protected=(TITLE,))
    fitted = fit(huge, X, alternatives=[fallback])
    assert fitted is not None and fitted.text == f"{TITLE}."


def test_hashtag_cap_counts_inline_tags_and_dedupes() -> None:
    insta = PLATFORMS["instagram"]
    inline = Draft((Segment("Loving #Fantasy and #Orchards this week.", 0, required=True),),
                   hashtags=("fantasy", "A", "B", "C", "D", "E"))
    capped = within_hashtag_cap(inline, insta.max_hashtags)
    assert capped.hashtags == ("A", "B", "C")
    too_many = Draft((Segment("#One #Two #Three #Four #Five #Six #Seven words.", 0, required=True),))
    fitted = fit(too_many, insta)
    assert fitted is not None and len(extract_hashtags(fitted.text)) == 5
    assert "Six Seven words." in fitted.text  # surplus tags lose their '#', the words stay
