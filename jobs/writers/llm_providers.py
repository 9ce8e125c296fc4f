"""The two wire protocols: OpenAI-compatible Chat Completions and Anthropic Messages.

Each asks for structured output first and steps down to simpler requests when
the server refuses them with HTTP 400 (many OpenAI-compatible servers reject
``json_schema``; some reject ``response_format`` altogether). The step a server
accepted is remembered for the writer's later requests.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from jobs.writers.llm_http import JsonPoster, ProviderError, RetryPolicy, permanent_error

log = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4.1-mini"
ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_DEFAULT_MODEL = "claude-haiku-4-5"
ANTHROPIC_VERSION = "2023-06-01"
TEMPERATURE = 0.8
ANTHROPIC_MAX_TOKENS = 4096
_TOOL_NAME = "submit_posts"


class ChatProvider(Protocol):
    name: str
    model: str
    base_url: str

    def complete(self, system: str, user: str, *, schema: dict, seed: int) -> Any:
        """The reply: a decoded JSON value when the server returned structured output, else text."""
        ...

    def close(self) -> None: ...


def _json_body(response: httpx.Response, provider: str) -> dict:
    try:
        data = response.json()
    except ValueError:
        raise ProviderError(f"unreadable reply from {provider}") from None
    if not isinstance(data, dict):
        raise ProviderError(f"unreadable reply from {provider}")
    return data


class OpenAIChat:
    """Chat Completions as served by OpenAI, Ollama, vLLM, llama.cpp and LM Studio."""

    name = "openai"
    MODES = ("json_schema", "json_object", "text")

    def __init__(self, *, base_url: str | None, api_key: str | None, model: str | None, timeout: float,
                 retries: RetryPolicy | None = None) -> None:
        self.base_url = (base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")
        self.model = model or OPENAI_DEFAULT_MODEL
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._poster = JsonPoster(self.name, self.base_url, headers, timeout, retries or RetryPolicy())
        self._mode = 0

    def __repr__(self) -> str:
        return f"OpenAIChat(base_url={self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._poster.close()

    def complete(self, system: str, user: str, *, schema: dict, seed: int) -> Any:
        while True:
            mode = self.MODES[self._mode]
            body: dict[str, Any] = {
                "model": self.model,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                "temperature": TEMPERATURE,
                "seed": seed,
            }
            if mode == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "social_posts", "strict": True, "schema": schema},
                }
            elif mode == "json_object":
                body["response_format"] = {"type": "json_object"}
            response = self._poster.post("/chat/completions", body)
            if response.status_code == 400:
                if self._mode + 1 < len(self.MODES):
                    self._mode += 1
                    log.info("openai: server refused %s output (HTTP 400); trying %s", mode, self.MODES[self._mode])
                    continue
                raise permanent_error(400, self.name)
            return self._content(_json_body(response, self.name))

    def _content(self, data: dict) -> str:
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise ProviderError("unreadable reply from openai") from None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or not content.strip():
            refusal = message.get("refusal") if isinstance(message, dict) else None
            raise ProviderError("openai refused the request" if refusal else "empty reply from openai")
        return content


class AnthropicMessages:
    """The Messages API; structured output comes from a forced tool call."""

    name = "anthropic"
    MODES = ("tool", "text")

    def __init__(self, *, base_url: str | None, api_key: str | None, model: str | None, timeout: float,
                 retries: RetryPolicy | None = None) -> None:
        self.base_url = (base_url or ANTHROPIC_DEFAULT_BASE_URL).rstrip("/")
        self.model = model or ANTHROPIC_DEFAULT_MODEL
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._path = "/messages" if self.base_url.endswith("/v1") else "/v1/messages"
        self._poster = JsonPoster(self.name, self.base_url, headers, timeout, retries or RetryPolicy())
        self._mode = 0

    def __repr__(self) -> str:
        return f"AnthropicMessages(base_url={self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._poster.close()

    def complete(self, system: str, user: str, *, schema: dict, seed: int) -> Any:
        # The Messages API has no seed; variety between batches comes from sampling.
        while True:
            mode = self.MODES[self._mode]
            body: dict[str, Any] = {
                "model": self.model,
                "max_tokens": ANTHROPIC_MAX_TOKENS,
                "system": system,
                "messages": [{"role": "user", "content": user}],
                "temperature": TEMPERATURE,
            }
            if mode == "tool":
                body["tools"] = [
                    {"name": _TOOL_NAME, "description": "Submit the finished posts.", "input_schema": schema}
                ]
                body["tool_choice"] = {"type": "tool", "name": _TOOL_NAME}
            response = self._poster.post(self._path, body)
            if response.status_code == 400:
                if self._mode + 1 < len(self.MODES):
                    self._mode += 1
                    log.info("anthropic: server refused tool output (HTTP 400); asking for plain JSON text")
                    continue
                raise permanent_error(400, self.name)
            return self._content(_json_body(response, self.name))

    def _content(self, data: dict) -> Any:
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise ProviderError("unreadable reply from anthropic")
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("input") is not None:
                return block["input"]
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        if not text.strip():
            raise ProviderError("empty reply from anthropic")
        return text
