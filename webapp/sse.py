"""Server-sent events on the wire: the message format and the streaming response."""
from __future__ import annotations

from collections.abc import AsyncIterator

from quart import make_response

KEEPALIVE = b": keep-alive\n\n"  # a comment: keeps proxies from closing a quiet stream


def message(data: str, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One event; `data` may span lines. An `id:` only when the event is part of the log."""
    lines = [f"id: {event_id}"] if event_id else []
    if event:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in (data.strip().splitlines() or [""])]
    return ("\n".join(lines) + "\n\n").encode()


def id_only(event_id: str) -> bytes:
    """Moves a browser's Last-Event-ID forward without changing the page."""
    return f"id: {event_id}\n\n".encode()


async def stream_response(body: AsyncIterator[bytes]):
    response = await make_response(body, 200, {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    response.timeout = None  # Quart would end a streamed response after 60 s
    return response
