"""Keywords shaped for a list, and blurb sentences that cannot stand alone."""

from __future__ import annotations

import pytest

from jobs.writers.phrasing import as_list_item, is_adjective, leans_on_previous, names_someone, plural


@pytest.mark.parametrize(("keyword", "listed"), [
    ("island", "islands"), ("lighthouse", "lighthouses"), ("haunted house", "haunted houses"),
    ("second chance", "second chances"), ("city", "cities"), ("wolf", "wolves"), ("heist", "heists"),
    ("family secrets", "family secrets"), ("dragons", "dragons"), ("found family", "found family"),
    ("old magic", "old magic"), ("money laundering", "money laundering"), ("productivity", "productivity"),
    ("friendship", "friendship"), ("violence", "violence"), ("Mars", "Mars"), ("AI", "AI"),
    ("French Resistance", "French Resistance"), ("a haunted house", "a haunted house"),
])
def test_keywords_read_as_list_items(keyword: str, listed: str) -> None:
    assert as_list_item(keyword) == listed


def test_plural_and_adjectives() -> None:
    assert [plural(w) for w in ("box", "church", "day", "child", "hero")] == [
        "boxes", "churches", "days", "children", "heroes"]
    assert is_adjective("Cozy") and is_adjective("dark") and not is_adjective("island")


@pytest.mark.parametrize(("sentence", "leans"), [
    ("As she decodes them, she uncovers a decades-old disappearance.", True),
    ("But the village elders have kept a secret.", True),
    ("Her boss tells her to stop.", True),
    ("When one of them is arrested, the other must decide.", True),
    ("When the last dragon falls silent, Mira must climb the mountains to wake it.", False),
    ("Someone on the island wants the logbook back.", False),
    ("What would you do if your house remembered you?", False),
    ("他每天画同一座灯塔。", True),
    ("海边小镇的咖啡馆里，她遇见了一个不说话的画家。", False),
])
def test_sentences_that_lean_on_the_one_before(sentence: str, leans: bool) -> None:
    assert leans_on_previous(sentence) is leans


def test_names_someone() -> None:
    assert names_someone("Forensic accountant Jess Moreno finds forty million dollars missing.")
    assert not names_someone("Every name on the ledger is dead or gone.")
    assert not names_someone("I never meant to stay.")
