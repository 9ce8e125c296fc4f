"""The fixture books (tests/fixtures/books.json) and the fixed day they are judged on."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from jobs.writers import Book

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "books.json"
_DATA = json.loads(FIXTURE.read_text(encoding="utf-8"))
TODAY = dt.date.fromisoformat(_DATA["today"])
ROWS: list[dict] = _DATA["books"]
BOOKS: dict[str, Book] = {row["id"]: Book.from_dict(row) for row in ROWS}
LANGUAGE: dict[str, str] = {row["id"]: row["language"] for row in ROWS}
