"""JSON answers by orjson keep Flask's output rules, and fall back where orjson refuses."""
import datetime as dt
import json

from quart import Quart

from webapp.json_body import JSONBody


async def _body(value) -> bytes:
    app = Quart(__name__)
    app.json = JSONBody(app, default=app.json.default)
    async with app.app_context():
        response = app.json.response(value)
    assert response.mimetype == "application/json"
    return await response.get_data()


async def test_sorted_compact_with_one_newline():
    assert await _body({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}\n'.encode()


async def test_dates_by_flasks_rule_not_orjsons():
    # Flask writes dates as HTTP dates; orjson would write ISO 8601.
    when = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.timezone.utc)
    assert json.loads(await _body({"at": when})) == {"at": "Thu, 03 Dec 2026 10:00:00 GMT"}


async def test_what_orjson_refuses_is_encoded_by_the_standard_library():
    assert json.loads(await _body({"n": 2 ** 70, "s": "\ud800"})) == {"n": 2 ** 70, "s": "\ud800"}
    assert json.loads(await _body({1: "a"})) == {"1": "a"}
