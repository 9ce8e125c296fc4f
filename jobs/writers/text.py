"""Small text helpers shared by the writers: sentences, tidying, articles, hashtags."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import regex

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
# Words whose final period does not end a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr prof vs etc mt no vol ed eds e.g i.e approx dept fig inc ltd co".split()
)
_CLOSERS = "\"'”’»)]」』）】"
_CLOSER_CLASS = "[" + regex.escape(_CLOSERS, special_only=False) + "]"
_SENTENCE_END = regex.compile(
    rf"(?<end>[.!?…]+{_CLOSER_CLASS}*)(?=\s+[^\p{{Ll}}\s])|(?<end>[。！？]+{_CLOSER_CLASS}*)(?=\S)"
)
_WORD_CHARS = regex.compile(r"[\p{L}\p{M}\p{N}]+")
_LETTER = regex.compile(r"[\p{L}]")
_PLACEHOLDER_BASE = 0xE000  # private-use code points never appear in book data
_SPACE_BEFORE_PUNCT = regex.compile(r"[ \t]+([,.!?;:%…)\]」』）])")
_SPACE_AFTER_OPENER = regex.compile(r"([(\[])\s+")
_EMPTY_BRACKETS = regex.compile(r"\(\s*\)|\[\s*\]")
_PUNCT_THEN_SOFT = regex.compile(r"([.!?…])[.,;:]+")
_SOFT_THEN_PUNCT = regex.compile(r"[,;:]+([.!?…])")
_SOFT_RUN = regex.compile(r"([,;:])[,;:]+")
_LEADING_PUNCT = regex.compile(r"(?m)^[ \t]*[,.;:]+[ \t]*")
_SPACE_RUN = regex.compile(r" {2,}")
_BLANK_RUN = regex.compile(r"\n{3,}")
# Where any of the substitutions above would change something: text without any is left as it
# is (most pieces a writer tidies are already tidy, and the substitutions cost more than a search).
_UNTIDY = regex.compile(
    r"(?m)[ \t][,.!?;:%…)\]」』）]|[(\[]\s|\(\s*\)|\[\s*\]|[.!?…][.,;:]|[,;:][.!?…,;:]|^[ \t]*[,.;:]| {2}|\n{3}")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; paragraph and line breaks always end a sentence."""
    sentences: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        start = 0
        for match in _SENTENCE_END.finditer(line):
            end = match.end("end")
            if match.group("end")[0] == "." and _ends_with_abbreviation(line[start:match.start("end")]):
                continue
            piece = line[start:end].strip()
            if piece:
                sentences.append(piece)
            start = end
        rest = line[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


def _ends_with_abbreviation(before_period: str) -> bool:
    words = before_period.split()
    if not words:
        return False
    last = words[-1].lower().strip("\"'“‘(")
    # A lone capital is an initial ("J. R. R. Tolkien").
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def ensure_terminal(sentence: str) -> str:
    """The sentence with closing punctuation, so joined sentences read as sentences."""
    sentence = sentence.strip()
    if not sentence:
        return sentence
    bare = sentence.rstrip(_CLOSERS)
    if bare and bare[-1] in ".!?…。！？":
        return sentence
    if bare and regex.match(r"\p{Han}|\p{Hiragana}|\p{Katakana}", bare[-1]):
        return sentence + "。"
    return sentence + "."


def tidy(text: str, protected: Sequence[str] = ()) -> str:
    """Normalise spacing and punctuation without touching ``protected`` spans (title, link).

    Catches what joining template pieces can leave behind: doubled spaces, a
    space before punctuation, doubled or clashing punctuation, empty brackets.
    """
    spans = sorted({p for p in protected if p}, key=len, reverse=True)
    for i, span in enumerate(spans):
        text = text.replace(span, chr(_PLACEHOLDER_BASE + i))
    text = text.replace("...", "…")
    text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    if _UNTIDY.search(text) or any(span[-1] in ".!?…" for span in spans):
        text = _substitute(text, spans)
    else:
        text = text.strip()
    for i, span in enumerate(spans):
        text = text.replace(chr(_PLACEHOLDER_BASE + i), span)
    return text


def _substitute(text: str, spans: Sequence[str]) -> str:
    """``tidy``'s substitutions, on text whose protected spans are placeholders."""
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    for i, span in enumerate(spans):
        # "Who Did It?." -> "Who Did It?" when a template closes a sentence after the title.
        if span[-1] in ".!?…":
            mark = chr(_PLACEHOLDER_BASE + i)
            text = regex.sub(mark + r"[.,;:]+", mark, text)
    text = _SPACE_AFTER_OPENER.sub(r"\1", text)
    text = _EMPTY_BRACKETS.sub("", text)
    text = _PUNCT_THEN_SOFT.sub(r"\1", text)
    text = _SOFT_THEN_PUNCT.sub(r"\1", text)
    text = _SOFT_RUN.sub(r"\1", text)
    text = _LEADING_PUNCT.sub("", text)
    text = _SPACE_RUN.sub(" ", text)
    text = _BLANK_RUN.sub("\n\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def with_article(phrase: str) -> str:
    """'a fantasy read' / 'an epic fantasy read'."""
    first = phrase.split()[0].lower() if phrase.split() else ""
    vowel_sound = first[:1] in {"a", "e", "i", "o", "u"}
    if first.startswith(("uni", "use", "usu", "eu", "one", "once")):
        vowel_sound = False
    if first.startswith(("hour", "honest", "honou", "heir")):
        vowel_sound = True
    return f"{'an' if vowel_sound else 'a'} {phrase}"


def join_words(items: Sequence[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def format_day(day: dt.date, today: dt.date) -> str:
    """'March 3' this year or within the coming months, 'March 3, 2027' otherwise."""
    label = f"{_MONTHS[day.month - 1]} {day.day}"
    if day.year != today.year and abs((day - today).days) > 120:
        label += f", {day.year}"
    return label


def camel_tag(phrase: str, *, max_length: int = 28) -> str | None:
    """A hashtag body from a phrase: 'found family' -> 'FoundFamily'; None if it makes no good tag."""
    words = _WORD_CHARS.findall(phrase.replace("'", "").replace("’", ""))
    if not words:
        return None
    tag = "".join(w[:1].upper() + w[1:] if w.islower() else w for w in words)
    if not _LETTER.search(tag) or len(tag) > max_length or len(tag) < 2:
        return None
    return tag


def has_letters(text: str) -> bool:
    return bool(_LETTER.search(text))


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word looks like a name or acronym."""
    first = text.split(" ", 1)[0]
    if len(first) > 1 and (first[1:].lower() != first[1:] or first.isupper()):
        return text
    return text[:1].lower() + text[1:]
