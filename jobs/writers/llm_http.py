"""JSON POSTs to an LLM server with bounded retries that honour Retry-After.

Transient failures (429, 5xx, timeouts, refused or dropped connections) are retried with
exponential backoff and jitter, each kind up to its own limit (`RetryPolicy`, from the
LLM_RETRIES_* settings); a permanent one (400, 401, 403, 404, ...) fails at once. Every
retried attempt's error goes to `attempt_notes` when a task set it, so its timeline keeps
them all.

Failures surface as ``ProviderError`` whose message is safe to show and store:
it names the provider and what went wrong, never a header or the API key. Its
``transient`` says whether asking again later may work (retries ran out) or not
(the key, the model or the request is wrong): the task fails either way, and a request
answered at once says which with 503 or 502.
"""

from __future__ import annotations

import contextvars
import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

log = logging.getLogger(__name__)

MAX_RETRY_WAIT = 30.0  # seconds; longer Retry-After values are capped to keep a batch moving
BACKOFF_BASE = 1.0
# 529 is Anthropic's "overloaded"; the rest are the usual transient statuses.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})

# Set by a running task: called with each retried attempt's error, for its timeline.
attempt_notes: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "attempt_notes", default=None)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times each kind of transient failure is retried (attempts = retries + 1)."""

    rate_limited: int = 4  # HTTP 429
    server: int = 2        # HTTP 5xx, 408, 409, 529
    timeout: int = 1       # no answer within the timeout: each retry costs a full timeout
    connection: int = 2    # refused, reset, DNS

    def limit(self, kind: str) -> int:
        return getattr(self, kind)


class ProviderError(Exception):
    """The provider could not produce a reply; ``reason`` is safe for logs and timelines."""

    error_type = "model"  # how a task that meets it records its failure

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


# What to check after a permanent refusal, by status (the rest: "not retried").
_PERMANENT_HINTS = {
    400: "the server refused the request; check LLM_MODEL",
    401: "the server refused the key; check LLM_API_KEY",
    403: "the key may not use this model; check LLM_API_KEY and LLM_MODEL",
    404: "no such model or endpoint; check LLM_MODEL and LLM_BASE_URL",
}


def permanent_error(status: int, provider: str) -> ProviderError:
    hint = _PERMANENT_HINTS.get(status, "not retried")
    return ProviderError(f"HTTP {status} from {provider}: {hint}")


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
    retries: RetryPolicy = field(default_factory=RetryPolicy)
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
        retried = {"rate_limited": 0, "server": 0, "timeout": 0, "connection": 0}
        attempt = 0
        while True:
            attempt += 1
            asked: float | None = None
            try:
                response = self._client.post(path, json=body)
            except httpx.TimeoutException:
                kind, error = "timeout", f"timeout after {seconds_label(self.timeout)} from {self.provider}"
            except httpx.TransportError as exc:
                kind, error = "connection", f"cannot reach {self.provider} ({type(exc).__name__})"
            else:
                status = response.status_code
                if status < 300 or status == 400:
                    return response
                if status not in RETRY_STATUSES:
                    raise permanent_error(status, self.provider)
                kind = "rate_limited" if status == 429 else "server"
                error, asked = f"HTTP {status} from {self.provider}", retry_after_seconds(response.headers)
            if retried[kind] >= self.retries.limit(kind):
                raise ProviderError(f"{error}{_after(attempt)}; retries ran out", transient=True)
            retried[kind] += 1
            self._wait(attempt, asked, error)

    def _wait(self, attempt: int, asked: float | None, why: str) -> None:
        if asked is None:
            # Full-size exponential steps, jittered so that many workers retrying together
            # do not hit the server again at the same instant.
            asked = BACKOFF_BASE * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
        delay = min(asked, MAX_RETRY_WAIT)
        message = f"{why}; retrying in {delay:.1f}s (attempt {attempt + 1})"
        log.info("%s", message)
        note = attempt_notes.get()
        if note is not None:
            note(message)
        self.sleep(delay)


def _after(attempt: int) -> str:
    return f" after {attempt} attempts" if attempt > 1 else ""
