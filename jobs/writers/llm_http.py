"""JSON POSTs to an LLM server with bounded retries that honour Retry-After.

Failures surface as ``ProviderError`` whose message is safe to show and store:
it names the provider and what went wrong, never a header or the API key.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
MAX_RETRY_WAIT = 30.0  # seconds; longer Retry-After values are capped to keep a batch moving
BACKOFF_BASE = 1.0
# 529 is Anthropic's "overloaded"; the rest are the usual transient statuses.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class ProviderError(Exception):
    """The provider could not produce a reply; ``reason`` is safe for logs and post notes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def retry_after_seconds(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``), or None."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def seconds_label(seconds: float) -> str:
    return f"{seconds:g}s"


@dataclass
class JsonPoster:
    """POSTs JSON to ``base_url`` + path with one client, explicit timeouts and bounded retries."""

    provider: str
    base_url: str
    headers: dict[str, str]
    timeout: float
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=self.headers,
            # Connecting should be quick even when generation is slow.
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
        )

    def __repr__(self) -> str:
        return f"JsonPoster(provider={self.provider!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def post(self, path: str, body: dict) -> httpx.Response:
        """The response for 2xx and 400 (the caller may retry with a simpler request); ProviderError otherwise."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            last = attempt == MAX_ATTEMPTS
            try:
                response = self._client.post(path, json=body)
            except httpx.TimeoutException as exc:
                # A slow server stays slow: retrying a read timeout would triple the wait.
                if isinstance(exc, httpx.ConnectTimeout) and not last:
                    self._wait(attempt, None, "connect timeout")
                    continue
                raise ProviderError(f"timeout after {seconds_label(self.timeout)} from {self.provider}") from None
            except httpx.TransportError as exc:
                if not last:
                    self._wait(attempt, None, type(exc).__name__)
                    continue
                raise ProviderError(f"cannot reach {self.provider} ({type(exc).__name__})") from None
            status = response.status_code
            if status < 300 or status == 400:
                return response
            if status in RETRY_STATUSES and not last:
                self._wait(attempt, retry_after_seconds(response.headers), f"HTTP {status}")
                continue
            suffix = f" after {attempt} attempts" if attempt > 1 else ""
            raise ProviderError(f"HTTP {status} from {self.provider}{suffix}")
        raise AssertionError("unreachable: the last attempt always returns or raises")

    def _wait(self, attempt: int, asked: float | None, why: str) -> None:
        delay = asked if asked is not None else BACKOFF_BASE * 2 ** (attempt - 1)
        delay = min(delay, MAX_RETRY_WAIT)
        log.info("%s: %s, retrying in %s (attempt %d of %d)", self.provider, why, seconds_label(delay),
                 attempt + 1, MAX_ATTEMPTS)
        self.sleep(delay)
