"""Server-sent events on the wire: the message format and the streaming response."""
from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Callable

from quart import make_response

KEEPALIVE = b": keep-alive\n\n"  # a comment: keeps proxies from closing a quiet stream


def message(data: str, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One event; `data` may span lines. An `id:` only when the event is part of the log."""
    lines = [f"id: {event_id}"] if event_id else []
    if event:
        lines.append(f"event: {event}")
    lines += [f"data: {line}" for line in (data.strip().splitlines() or [""])]
    return ("\n".join(lines) + "\n\n").encode()


def event_message(event, data: bytes | None = None) -> bytes:
    """A `jobs.events.Event` as JSON, named by its kind: its JSON is encoded once per process
    (`data`: other JSON in its place, for an audience shown less of it)."""
    return b"".join((b"id: ", event.id.encode(), b"\nevent: ",
                     event.data.get("kind", "message").encode(), b"\ndata: ",
                     event.json if data is None else data, b"\n\n"))


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


class DirectSocket:
    """A stream's connection, written to directly: each chunk framed for HTTP/1.1 chunked
    transfer and handed to the transport in one write."""

    HIGH_WATER = 256 * 1024  # bytes queued for one client before its stream waits for it

    __slots__ = ("_writer", "_transport", "last_write")

    def __init__(self, writer) -> None:
        self._writer = writer
        self._transport = writer.transport
        self.last_write = time.monotonic()

    def write(self, data: bytes) -> None:
        if data and not self._transport.is_closing():
            self._transport.write(b"%x\r\n%b\r\n" % (len(data), data))
            self.last_write = time.monotonic()

    @property
    def backed_up(self) -> bool:
        return self._transport.get_write_buffer_size() > self.HIGH_WATER

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("the client has gone")
        await self._writer.drain()

    def idle_for(self, now: float) -> float:
        return now - self.last_write


class _Requests:
    """The requests other than streams this process is answering: how many, and when the
    latest began (the stream pump gives way to them: see webapp/fanout.py)."""

    last = 0.0
    active = 0

    def began(self) -> None:
        self.active += 1
        self.last = time.monotonic()

    def ended(self) -> None:
        self.active -= 1


requests = _Requests()

_direct: contextvars.ContextVar[DirectSocket | None] = contextvars.ContextVar(
    "direct_socket", default=None)


def direct_socket() -> DirectSocket | None:
    """The socket of the event stream this request is answering, when it may be written to
    directly (see DirectStreams); None otherwise."""
    return _direct.get()


class DirectStreams:
    """ASGI middleware: the body of an event stream may go straight to the client's socket.

    A stream sends many small chunks for as long as it is open, and each one would otherwise
    pass through the server's whole per-message path (HTTP state machine, chunk framing, a
    lock, a write and a drain), which costs more than everything else a stream does. Under
    Hypercorn with HTTP/1.1 chunked framing, the response head still goes through the server,
    then the stream finds its socket with `direct_socket()`; body chunks sent the ordinary
    way are written directly too. Anything else (another server, HTTP/2, the test client)
    uses the ordinary send.
    """

    def __init__(self, app, paths: Callable[[str], bool]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "GET" and self.paths(scope["path"]):
                send = self._direct(send)
            else:
                requests.began()
                try:
                    await self.app(scope, receive, send)
                finally:
                    requests.ended()
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _direct(send):
        socket: DirectSocket | None = None

        async def direct_send(message) -> None:
            nonlocal socket
            if socket is not None and message["type"] == "http.response.body" \
                    and message.get("more_body"):
                socket.write(message.get("body", b""))
                if socket.backed_up:
                    await socket.drain()
                return
            await send(message)
            if message["type"] == "http.response.start" and _is_event_stream(message):
                writer = _chunked_socket_writer(send)
                if writer is not None:
                    socket = DirectSocket(writer)
                    _direct.set(socket)  # the request's task reads it (the same context)

        return direct_send


def _is_event_stream(message: dict) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"text/event-stream")
               for name, value in message.get("headers", ()))


def _chunked_socket_writer(send):
    """The StreamWriter under Hypercorn's HTTP/1.1 send, when the response is chunked."""
    try:
        stream = send.__self__                 # hypercorn.protocol.http_stream.HTTPStream
        protocol = stream.send.__self__        # hypercorn.protocol.h11.H11Protocol
        server = protocol.send.__self__        # hypercorn.asyncio.tcp_server.TCPServer
        framing = type(protocol.connection._writer).__name__
        writer = server.writer
    except AttributeError:
        return None
    return writer if framing == "ChunkedWriter" else None
