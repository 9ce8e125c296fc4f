"""How the book's own words can be used in a sentence: keywords as phrases, sentences that stand alone.

Keywords arrive as bare search terms ("island", "lighthouse", "family secrets",
"cozy"). Listed as they are they read as pasted ("If you love island, lighthouse
and family secrets"), so each one is shaped for the places the writer puts it:
a singular count noun turns plural ("islands"), plural, uncountable and proper
nouns stay as they are ("family secrets", "old magic", "Mars"), and an adjective
("cozy") describes the book rather than joining a list of things.

A blurb sentence that opens with a pronoun or a linking word ("As she decodes
them, she uncovers...", "But the elders knew.") only reads after the sentence
before it, so it is never used on its own.
"""

from __future__ import annotations

from functools import lru_cache

import regex

# Opening words that hand the sentence back to the one before it.
_LINKING_OPENERS = frozenset(
    """and but or so then yet still nor also too instead meanwhile there now
    this these that those such""".split()
)
# A sentence that reaches one of these before any name leans on an earlier one for it.
_PERSONAL_PRONOUNS = frozenset("he she they it his her hers their theirs its him them himself herself themselves".split())
# The same for Chinese and Japanese, where words are not spaced: he/she/it, but, this/that, so.
_CJK_LEANING_PREFIXES = ("他", "她", "它", "但", "而", "这", "那", "可是", "不过", "然而", "于是", "所以",
                         "彼", "しかし", "だが", "でも", "そして", "それ", "その", "この")
_WORD = regex.compile(r"[\p{L}\p{N}][\p{L}\p{M}\p{N}'’-]*")

# Nouns read as a kind of thing, not one thing: "If you love old magic" needs no plural.
_UNCOUNTABLE = frozenset(
    """magic love romance mystery suspense horror fantasy family friendship grief hope courage revenge
    betrayal adventure history science food art music war power time identity loss redemption justice
    trust survival freedom faith poetry nature humour humor comedy drama crime murder tension danger
    wisdom kindness healing chemistry physics money work teamwork travel heartbreak heartache heat spice
    banter angst fiction nonfiction folklore mythology romantasy sorcery witchcraft espionage
    politics economics mathematics ethics news research evidence advice information knowledge
    equipment furniture luggage weather space mischief chaos intrigue strength""".split()
)
_UNCOUNTABLE_SUFFIXES = ("ness", "ship", "ity", "ism", "ing", "hood", "dom", "cy", "ics", "time", "ledge",
                         "fare", "ware", "lore")
# These mark uncountable nouns only in longer words ("violence", "ambition"; not "chance", "nation").
_LONG_UNCOUNTABLE_SUFFIXES = ("ment", "ance", "ence", "tion", "sion")
# Keywords that describe rather than name: they go before "read", never into a list.
_ADJECTIVES = frozenset(
    """cozy cosy dark spicy steamy clean sweet funny gritty atmospheric emotional heartwarming uplifting
    wholesome lighthearted light-hearted feel-good literary historical contemporary paranormal magical
    romantic gothic epic dystopian queer diverse inspirational twisty creepy scary witty whimsical quirky
    tense fast-paced slow-burning haunting moving hopeful bittersweet sapphic chilling gripping""".split()
)
_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "person": "people", "mouse": "mice",
    "goose": "geese", "tooth": "teeth", "foot": "feet", "wolf": "wolves", "thief": "thieves",
    "knife": "knives", "life": "lives", "wife": "wives", "leaf": "leaves", "shelf": "shelves",
    "elf": "elves", "half": "halves", "hero": "heroes", "potato": "potatoes", "tomato": "tomatoes",
    "cactus": "cacti", "fungus": "fungi",
}
_DETERMINERS = frozenset("a an the this that these those my your his her its our their one some every".split())


@lru_cache(maxsize=4096)  # asked of each blurb sentence for every excerpt a batch tries
def leans_on_previous(sentence: str) -> bool:
    """True when the sentence needs the one before it: it opens with a linking word or a
    pronoun, or reaches a personal pronoun before naming anyone ("As she decodes them, ...")."""
    if sentence.startswith(_CJK_LEANING_PREFIXES):
        return True
    words = _WORD.findall(sentence)
    if not words:
        return False
    first = words[0].lower()
    if first in _LINKING_OPENERS or first in _PERSONAL_PRONOUNS:
        return True
    for word in words[1:]:
        if word[0].isupper():
            return False  # a name (or "I") comes first: the sentence says who it is about
        if word.lower() in _PERSONAL_PRONOUNS:
            return True
    return False


@lru_cache(maxsize=4096)
def names_someone(sentence: str) -> bool:
    """True when a word after the first is capitalised (a name): a sentence like that can be
    what a following "she" or "they" refers to; "Every name on the ledger is gone." cannot."""
    return any(w[0].isupper() and w != "I" for w in _WORD.findall(sentence)[1:])


def is_adjective(keyword: str) -> bool:
    return keyword.casefold() in _ADJECTIVES


def as_list_item(keyword: str) -> str:
    """The keyword as it reads in a list of things a reader loves: count nouns in the plural."""
    words = keyword.split()
    if not words:
        return keyword
    head = words[-1]
    if (
        len(words) > 3
        or words[0].lower() in _DETERMINERS
        or not head.isalpha()
        or head[0].isupper()  # a name or acronym: "Mars", "AI", "French Resistance"
        or _is_plural(head)
        or _is_uncountable(head.lower())
    ):
        return keyword
    return " ".join([*words[:-1], plural(head)])


def _is_plural(word: str) -> bool:
    lowered = word.lower()
    if lowered in _IRREGULAR_PLURALS.values():
        return True
    return lowered.endswith("s") and not lowered.endswith(("ss", "us", "is", "ous"))


def _is_uncountable(word: str) -> bool:
    return (word in _UNCOUNTABLE or (len(word) > 5 and word.endswith(_UNCOUNTABLE_SUFFIXES))
            or (len(word) > 7 and word.endswith(_LONG_UNCOUNTABLE_SUFFIXES)))


def plural(noun: str) -> str:
    """English plural of a singular noun: 'island' -> 'islands', 'city' -> 'cities', 'wolf' -> 'wolves'."""
    lowered = noun.lower()
    if lowered in _IRREGULAR_PLURALS:
        return noun[0] + _IRREGULAR_PLURALS[lowered][1:]
    if lowered.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if lowered.endswith("y") and len(lowered) > 1 and lowered[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"
