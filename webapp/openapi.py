"""The OpenAPI document at /openapi.json: quart-schema's, completed so that it validates
and says what every operation answers.

quart-schema documents request bodies and query strings from the models; it leaves
`responses` empty where a route declares none (which makes the document invalid) and
knows nothing of our error bodies or tokens. Here every operation gets its success, its
`{"error", "message"}` refusals and the bearer-token scheme, in one place, so routes
added later are documented the same way.
"""
from __future__ import annotations

from typing import Any

from quart_schema import OpenAPIProvider
from werkzeug.routing import IntegerConverter

from jobs.models import MAX_ID

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. invalid_request"},
        "message": {"type": "string", "description": "what went wrong and what to do"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "per-field problems of a request body"},
    },
    "additionalProperties": True,
}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str, api: bool) -> dict:
    content = {"application/json": {"schema": _ERROR}}
    if not api:  # people on pages get the HTML error page
        content["text/html"] = {"schema": {"type": "string"}}
    return {"description": description, "content": content}


class ApiDocument(OpenAPIProvider):
    def schema(self) -> dict[str, Any]:
        document = super().schema()
        document["components"]["schemas"]["Error"] = ERROR_SCHEMA
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "an API token (POST /api/tokens, the account page or "
                                      "`python -m webapp create-user --token`)"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "bma_session",
                       "description": "the session of a signed-in browser (POST /login)"}}
        document["security"] = [{"bearer": []}, {"cookie": []}]
        return document

    def build_paths(self, rule) -> tuple[dict, dict]:
        paths, components = super().build_paths(rule)
        view = self._app.view_functions[rule.endpoint]
        api = rule.rule.startswith("/api/") or rule.rule in ("/metrics", "/openapi.json")
        for operations in paths.values():
            for method, operation in operations.items():
                operations[method] = self._complete(operation, view, api)
        return paths, components

    def build_path_parameter(self, name: str, converter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, IntegerConverter):
            parameter["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
        return parameter

    def operation_id(self, method: str, path: str, func) -> str:
        # Page and API views share names (health, stats): the module keeps ids unique.
        return f"{method.lower()}_{func.__module__.rsplit('.', 1)[-1]}_{func.__name__}"

    def _complete(self, operation: dict, view, api: bool) -> dict:
        responses = {str(code): answer for code, answer in operation["responses"].items()}
        if not any(str(code).startswith("2") for code in responses):
            responses["2XX"] = {"description": operation.get("summary") or "done",
                                "content": {"application/json" if api else "text/html":
                                            {"schema": {} if api else {"type": "string"}}}}
        if not api:
            responses.setdefault("3XX", {"description": "a redirect to the next page (or to "
                                                        "sign in)"})
        responses.setdefault("4XX", _error("refused: bad input (400), not signed in (401), "
                                           "not allowed (403), not found (404), conflict "
                                           "(409), too large (413), too many requests (429, "
                                           "with Retry-After)", api))
        responses.setdefault("5XX", _error("the service or something it needs is "
                                           "unavailable; retry later", api))
        operation = {**operation, "responses": responses}
        if getattr(view, "_public", False):
            operation["security"] = []
        return operation
