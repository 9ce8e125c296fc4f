"""Input edges checked once for every request, before any route or database sees them.

Text a database cannot store (NUL: PostgreSQL refuses it; lone surrogates: no encoding
can write them) is refused in the URL, the query string, form fields and JSON bodies;
JSON nesting is bounded; whole numbers in URLs are bounded to what an id column holds.
Each refusal is an ApiError, so API clients get JSON and people on pages the error page.
"""
from __future__ import annotations

import json
import re

from quart import Quart, request
from werkzeug.routing import IntegerConverter

from jobs.models import MAX_ID
from webapp.errors import ApiError

MAX_JSON_DEPTH = 32
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_ASCII_ID = re.compile(r"[0-9]{1,10}")


def unstorable(text: str) -> bool:
    """True for text with a NUL byte or a lone surrogate."""
    return _UNSTORABLE.search(text) is not None


def parse_id(text: str) -> int | None:
    """An id typed by a person or a form ("42"), or None: ASCII digits only, in range."""
    if not _ASCII_ID.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


class BoundedInt(IntegerConverter):
    """`<int:...>` in a URL: out-of-range numbers match no route (404), never reach SQL."""

    def __init__(self, map, *args, **kwargs) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def _refuse(where: str) -> ApiError:
    return ApiError(400, "invalid_text", f"{where} contains a NUL byte or an unpaired "
                                         "surrogate; send plain UTF-8 text")


def check_json(data: object) -> None:
    """Walk a parsed JSON value without recursion: bounded depth, storable strings."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, "bad_json", f"the request body nests deeper than "
                                            f"{MAX_JSON_DEPTH} levels")
        if isinstance(value, str):
            if unstorable(value):
                raise _refuse("the request body")
        elif isinstance(value, dict):
            for key, item in value.items():
                if unstorable(key):
                    raise _refuse("a key of the request body")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def loads(raw: bytes) -> object:
    """Parse a JSON body; a body too deep for the parser is a 400 like any bad JSON."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "bad_json", f"the request body nests deeper than "
                                        f"{MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "bad_json", f"the request body is not valid JSON: {exc}") from None
    check_json(data)
    return data


def init_inputs(app: Quart) -> None:
    app.url_map.converters["int"] = BoundedInt

    @app.before_request
    async def _check_text() -> None:
        for where, values in (("the URL", (request.path, *(request.view_args or {}).values())),
                              ("the query string", _all(request.args))):
            if any(isinstance(v, str) and unstorable(v) for v in values):
                raise _refuse(where)
        if request.method != "GET" and request.mimetype in FORM_TYPES:
            if any(unstorable(v) for v in _all(await request.form)):
                raise _refuse("a form field")


def _all(multidict) -> list[str]:
    return [text for key, value in multidict.items(multi=True) for text in (key, value)]
