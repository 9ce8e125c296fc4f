"""Post writers: the offline writer (default) and LLM-backed writers with an offline fallback."""

from __future__ import annotations

from jobs.writers.models import Book, Post, Writer

__all__ = ["PROVIDERS", "Book", "Post", "Writer", "make_writer"]

PROVIDERS: tuple[str, ...] = ("offline", "openai", "anthropic")


def make_writer(
    provider: str = "offline",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float = 30.0,
    retries: dict[str, int] | None = None,
) -> Writer:
    """A writer for ``provider``: "offline", "openai" (any Chat Completions server) or "anthropic"."""
    key = (provider or "offline").strip().lower()
    if key == "offline":
        from jobs.writers.offline import OfflineWriter

        return OfflineWriter()
    if key in ("openai", "anthropic"):
        from jobs.writers.llm import make_llm_writer

        return make_llm_writer(key, base_url=base_url, api_key=api_key, model=model, timeout=timeout,
                               retries=retries)
    raise ValueError(f"unknown writer provider {provider!r}; expected one of: {', '.join(PROVIDERS)}")
