"""JSON answers encoded by orjson.

Under load the standard library's encoder was the event loop's biggest single item (the
active-task list: 14 % of its samples); orjson writes the same JSON about ten times faster.
The output keeps Flask's rules: sorted keys, compact, dates and dataclasses by the `default`
of the provider it replaces (Flask's, extended by quart-schema for models). What orjson
refuses (an integer beyond 64 bits, a non-string key, a lone surrogate) is encoded by the
standard library as before.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
           | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE)


class JSONBody(DefaultJSONProvider):
    def __init__(self, app, default: Callable[[Any], Any]) -> None:
        super().__init__(app)
        self.default = default  # type: ignore[method-assign]

    def response(self, *args: Any, **kwargs: Any):
        if self._app.debug or self.compact is False:
            return super().response(*args, **kwargs)  # indented, for reading
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=OPTIONS)
        except orjson.JSONEncodeError:
            body = f"{self.dumps(obj, separators=(',', ':'))}\n".encode()
        return self._app.response_class(body, mimetype=self.mimetype)
