"""What the LLM writers ask for: the instructions, the book profile and the JSON shape of the answer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from jobs.platforms import Platform
from jobs.writers.hashtags import PREFERRED_COUNT
from jobs.writers.models import Book
from jobs.writers.offline import SOFT_LENGTH

SYSTEM_PROMPT = (
    "You write social media posts that help authors market their own books. "
    "Use only facts from the book profile you are given. Never claim awards, prizes, "
    "bestseller status, rankings, star ratings, reviews, sales figures or prices unless "
    "the profile states them. Keep sentences short and plain. Reply with JSON only."
)

ANGLES = (
    "question hook", "teaser line from the blurb", "for readers who...", "comparable titles",
    "behind the scenes", "launch countdown", "release day", "review request", "spotlight",
)

POSTS_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "posts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "angle": {"type": "string"}},
                "required": ["text", "angle"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["posts"],
    "additionalProperties": False,
}

_COUNTING = {
    "twitter": "weighted characters: URLs count 23, emoji and CJK characters count 2",
    "threads": "characters, each emoji counting as its UTF-8 bytes (usually 4)",
    "bluesky": "grapheme clusters (and at most 3000 UTF-8 bytes)",
    "mastodon": "characters, each URL counting 23",
    "linkedin": "characters after escaping \\ | { } @ [ ] ( ) < > * _ ~ with a backslash",
}


def user_prompt(
    book: Book, platform: Platform, count: int, *, today: dt.date, avoid: Sequence[str], link_in_text: bool
) -> str:
    """The request for ``count`` posts for ``platform``; ``avoid`` lists posts they must not resemble."""
    profile = {
        "title": book.title,
        "author": book.author,
        "genre": book.genre,
        "blurb": book.blurb,
        "audience": book.audience,
        "keywords": list(book.keywords),
        "comparable_titles": list(book.comparables),
        "launch_date": book.launch_date.isoformat() if book.launch_date else None,
        "tone": book.tone,
    }
    target = min(platform.limit, SOFT_LENGTH.get(platform.name, platform.limit))
    tags = PREFERRED_COUNT.get(platform.name, 2)
    if platform.max_hashtags is not None:
        tags = min(tags, platform.max_hashtags)
    if link_in_text:
        link_rule = f"End each post with this exact link, unchanged: {book.link}"
    elif book.link and platform.links_clickable:
        link_rule = 'The link is too long for this platform: put no URL in the text; say "link in profile" instead.'
    elif book.link:
        link_rule = 'Links are not clickable here: put no URL in the text; say "link in bio" instead.'
    else:
        link_rule = "Put no URL in the text."
    rules = [
        f"Platform: {platform.label}. Hard limit: {platform.limit} {_COUNTING.get(platform.name, 'characters')}.",
        f"Aim for at most {int(target * 0.85)} of those so the post fits with room to spare.",
        f"Use at most {tags} hashtags, all at the end, none repeated.",
        link_rule,
        f"Every post must contain the exact title: {book.title}",
        f"Write in a {book.tone} tone. Today is {today.isoformat()}; only mention the launch date if it helps.",
        f"Write {count} posts, each with a different angle, chosen from: {', '.join(ANGLES)}.",
        "No two posts may be close rewordings of each other or of the earlier posts listed below.",
        'Answer as JSON: {"posts": [{"text": "...", "angle": "..."}]}',
    ]
    earlier = [" ".join(text.split())[:160] for text in list(avoid)[-6:]]
    parts = ["Book profile:", json.dumps(profile, ensure_ascii=False, indent=1), "Rules:", *(f"- {r}" for r in rules)]
    if earlier:
        parts += ["Earlier posts to differ from:", *(f"- {e}" for e in earlier)]
    return "\n".join(parts)
