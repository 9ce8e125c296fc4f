"""The generate form: from posted fields to a validated GeneratePosts, or errors per field.

Input names match the keys of validation errors ("platforms", "count_per_platform",
"book.title", ...), so an error is shown next to the field whose name it carries.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from webapp.inputs import parse_id
from webapp.schemas import GeneratePosts

FORM_ERROR = "_form"  # an error about the request as a whole
DEFAULTS = {"book_id": "", "user_id": "", "platforms": ["twitter", "bluesky"],
            "count_per_platform": "1", "async": False, "book.tone": "warm"}

# Friendlier words for the validation errors an author is likely to meet.
_MESSAGES = {
    ("platforms", "too_short"): "Choose at least one platform.",
    ("platforms", "literal_error"): "Choose platforms from the list.",
    ("book.title", "string_too_short"): "Enter the book's title, or choose a saved book.",
    ("book_id", "greater_than_equal"): "Choose a book from the list.",
    ("count_per_platform", "greater_than_equal"): "Ask for at least 1 post per platform.",
    ("count_per_platform", "less_than_equal"): "At most 50 posts per platform.",
    ("user_id", "string_too_short"): "Enter a user id.",
    ("book.link", "value_error"): "Enter a web address starting with http:// or https://.",
}


@dataclass
class GenerateForm:
    values: dict = field(default_factory=lambda: dict(DEFAULTS))
    errors: dict[str, str] = field(default_factory=dict)
    body: GeneratePosts | None = None

    @property
    def ok(self) -> bool:
        return self.body is not None and not self.errors


def parse_generate(form) -> GenerateForm:
    """Read the posted form (a MultiDict); validate it like the JSON API does."""
    values = {
        "book_id": (form.get("book_id") or "").strip(),
        "user_id": (form.get("user_id") or "").strip(),
        "platforms": form.getlist("platforms"),
        "count_per_platform": (form.get("count_per_platform") or "").strip(),
        "async": form.get("async") in ("1", "on", "true"),
        **{f"book.{name}": (form.get(f"book.{name}") or "").strip()
           for name in ("title", "author", "blurb", "link", "keywords", "tone")},
    }
    result = GenerateForm(values=values)
    try:
        count = int(values["count_per_platform"])
    except ValueError:
        result.errors["count_per_platform"] = "Enter a whole number of posts per platform."
        count = 1
    data = {"user_id": values["user_id"] or None, "platforms": values["platforms"],
            "count_per_platform": count, "async": values["async"]}
    if values["book_id"]:  # one of the author's saved books
        data["book_id"] = parse_id(values["book_id"]) or -1
    else:  # a book described in the form, for this request only
        if not values["book.title"]:
            result.errors["book.title"] = "Enter the book's title, or choose a saved book."
        data["book"] = {
            "title": values["book.title"], "author": values["book.author"],
            "blurb": values["book.blurb"], "link": values["book.link"],
            "keywords": [k.strip() for k in values["book.keywords"].split(",") if k.strip()],
            "tone": values["book.tone"] or "warm"}
    try:
        body = GeneratePosts.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            key = _field_key(error["loc"])
            result.errors.setdefault(key, _MESSAGES.get((key, error["type"]), error["msg"]))
        return result
    if not result.errors:
        result.body = body
    return result


def field_errors_from(extra: dict) -> dict[str, str]:
    """ApiError.extra["fields"] keys ("platforms.0", "book.keywords.3") as form field names."""
    return {_field_key(tuple(key.split("."))): message
            for key, message in (extra.get("fields") or {}).items()}


def _field_key(loc: tuple) -> str:
    # A list item's error belongs to the list's field ("platforms.1" -> "platforms").
    parts = [str(p) for p in loc if not (isinstance(p, int) or str(p).isdigit())]
    key = ".".join(parts) or FORM_ERROR
    return "book.title" if key == "book" else key
