"""Each platform's own length counter and posting rules, on known vectors."""

from __future__ import annotations

import dataclasses

import pytest

from jobs.platforms import PLATFORMS, Platform, escape_linkedin, extract_hashtags, get_platform

FAMILY = "👨‍👩‍👧‍👦"  # four people joined by zero-width joiners: one grapheme, 25 UTF-8 bytes
LONG_URL = "https://example.com/" + "a" * 600
X, THREADS, BLUESKY, MASTODON = (PLATFORMS[n] for n in ("twitter", "threads", "bluesky", "mastodon"))


def test_platform_order_and_shape() -> None:
    assert list(PLATFORMS) == ["twitter", "facebook", "instagram", "linkedin", "threads", "bluesky", "mastodon", "tiktok"]
    limits = {name: p.limit for name, p in PLATFORMS.items()}
    assert limits == {"twitter": 280, "facebook": 63_206, "instagram": 2_200, "linkedin": 3_000,
                      "threads": 500, "bluesky": 300, "mastodon": 500, "tiktok": 2_200}
    assert [n for n, p in PLATFORMS.items() if not p.links_clickable] == ["instagram", "tiktok"]
    assert PLATFORMS["instagram"].max_hashtags == 5 and THREADS.max_links == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        X.limit = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", 5),
        (LONG_URL, 23),
        ("read https://example.com/book now", 5 + 23 + 4),
        ("example.com", 23),  # twitter-text links bare domains too
        ("😀", 2),
        (FAMILY, 2),
        ("日本語", 6),
        ("東京 by Yuki", 4 + 8),
    ],
)
def test_twitter_weighted_length(text: str, expected: int) -> None:
    assert X.count(text) == expected


def test_twitter_limit_edges() -> None:
    assert X.fits("a" * 280) and not X.fits("a" * 281)
    assert X.fits("日" * 140) and not X.fits("日" * 141)
    assert X.fits("a" * 250 + " " + LONG_URL)


@pytest.mark.parametrize(("text", "expected"), [("abc", 3), ("😀", 4), (FAMILY, 25), ("🇯🇵", 8), ("é", 1)])
def test_threads_counts_emoji_as_utf8_bytes(text: str, expected: int) -> None:
    assert THREADS.count(text) == expected


def test_threads_link_and_tag_caps() -> None:
    five = " ".join(f"https://example.com/{i}" for i in range(5))
    assert THREADS.fits(five) and not THREADS.fits(five + " https://example.com/6")
    assert THREADS.fits("One tag #Books") and not THREADS.fits("#Books #Reading")


def test_bluesky_graphemes_and_byte_cap() -> None:
    assert BLUESKY.count(FAMILY) == 1
    assert BLUESKY.count("e\u0301") == 1
    assert BLUESKY.count(LONG_URL) == len(LONG_URL)
    assert BLUESKY.fits("a" * 300) and not BLUESKY.fits("a" * 301)
    assert BLUESKY.fits(FAMILY * 120)  # 120 graphemes, exactly 3000 bytes
    assert BLUESKY.count(FAMILY * 121) == 121 and not BLUESKY.fits(FAMILY * 121)  # 3025 bytes


def test_mastodon_urls_and_mentions() -> None:
    assert MASTODON.count(LONG_URL) == 23
    assert MASTODON.count("see https://x.org/a") == 4 + 23
    assert MASTODON.count("example.com") == 11  # only URLs with a scheme are shortened
    assert MASTODON.count("@alice@mastodon.social hi") == len("@alice hi")
    assert MASTODON.count(FAMILY) == 1


def test_mastodon_limit_is_configurable() -> None:
    assert get_platform("mastodon") is MASTODON
    wide = get_platform("mastodon", mastodon_limit=1000)
    assert wide.limit == 1000 and wide.fits("a" * 900) and not MASTODON.fits("a" * 900)
    assert get_platform("twitter", mastodon_limit=1000) is X
    with pytest.raises(KeyError):
        get_platform("myspace")


def test_instagram_and_tiktok_rules() -> None:
    insta = PLATFORMS["instagram"]
    assert insta.fits("#a1 #b2 #c3 #d4 #e5") and not insta.fits("#a1 #b2 #c3 #d4 #e5 #f6")
    assert not insta.fits("Read it at https://example.com/book")
    assert not PLATFORMS["tiktok"].fits("https://example.com/book")
    assert insta.fits("a" * 2200) and not insta.fits("a" * 2201)


def test_hashtags_ignore_url_fragments_and_numbers() -> None:
    assert extract_hashtags("see https://x.com/page#frag #Real #1 #東京 a#b") == ["Real", "東京"]


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("Hi @you (see) a_b *x* ~y~ <z> [q] {r} | back\\slash", r"Hi \@you \(see\) a\_b \*x\* \~y\~ \<z\> \[q\] \{r\} \| back\\slash"),
        ("#Books stay hashtags, but #1 and C# do not", r"#Books stay hashtags, but \#1 and C\# do not"),
        ("Link: https://en.example.org/wiki/Cafe_(novel)#top stays", "Link: https://en.example.org/wiki/Cafe_(novel)#top stays"),
        ("Plain words stay plain.", "Plain words stay plain."),
    ],
)
def test_linkedin_escaping(text: str, escaped: str) -> None:
    linkedin = PLATFORMS["linkedin"]
    assert linkedin.escape(text) == escaped == escape_linkedin(text)
    assert linkedin.count(text) == len(escaped)  # the API limit applies to what is sent


def test_escape_is_identity_elsewhere() -> None:
    for name, platform in PLATFORMS.items():
        if name != "linkedin":
            assert platform.escape("(a) #b @c_d") == "(a) #b @c_d"


def test_linkedin_limit_counts_escapes() -> None:
    linkedin: Platform = PLATFORMS["linkedin"]
    assert linkedin.fits("a" * 3000)
    assert not linkedin.fits("(" * 1501)  # 3002 once escaped


# Counters add up word by word (each word remembered) for speed; these texts hold what could
# break that: URLs, mentions, emoji sequences, CJK, combining marks and joiners after a space.
WORDWISE_TEXTS = [
    "Meet The Last Dragon of Winter by Ann Lee.\nFind it here: https://books.example.com/last-dragon\n#Fantasy #Dragons",
    "Read it: https://shop.example.com/b/9781234509876?utm_source=social&utm_medium=organic&x=(1) now.",
    "e.g. example.com, t.co/abc and www.example.org/path?q=1#frag. Also @ann@example.social says hi.",
    f"Family {FAMILY} time 👍🏽 ok 🇯🇵 flags 1️⃣ keycap © ® ™ end.",
    "海边小镇的咖啡馆里，她遇见了一个不说话的画家。 🌊☕ https://books.example.cn/dengta",
    "Combining after a space: a \u0301b and a joiner \u200d and a skin tone \U0001F3FD here.",
    "Windows line\r\nbreaks and tabs\tand  doubled  spaces \n\n trailing ",
    "#Tag #Another #日本語 (parenthesis) [bracket] {brace} *star* _under_ ~tilde~ | pipe \\ back",
    "",
]


@pytest.mark.parametrize("text", WORDWISE_TEXTS)
def test_counters_add_up_word_by_word(text: str) -> None:
    import regex
    from twitter_text import parse_tweet

    from jobs import platforms

    graphemes = regex.findall(r"\X", text)
    assert platforms.count_twitter(text) == parse_tweet(text).weightedLength
    assert platforms.count_graphemes(text) == len(graphemes)
    assert platforms.count_threads(text) == platforms._threads(text)
    assert platforms.count_mastodon(text) == platforms._mastodon(text)
    assert platforms.count_linkedin(text) == len(escape_linkedin(text))
    urls = platforms._twitter_text.extract_urls_with_indices(text)
    assert platforms.extract_urls(text) == [(u["indices"][0], u["indices"][1], u["url"]) for u in urls]
