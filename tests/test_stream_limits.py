"""Open event streams are capped per user (429) and per process (503); others still answer."""
from __future__ import annotations

import socket

from tests.support import wait_until


def _open_stream(stack, token: str, path: str = "/api/events") -> tuple[socket.socket, int, bytes]:
    """A raw connection that keeps its stream open; (socket, status, head and first bytes)."""
    conn = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        while b"}" not in body:
            body += conn.recv(65536)
    return conn, status, head + b"\r\n\r\n" + body


def test_streams_past_the_caps_are_refused_and_the_api_still_answers(fresh_stack):
    stack = fresh_stack("redis", STREAM_LIMIT_PER_USER="2", STREAM_LIMIT="3").start()
    author = stack.create_user("writer@example.com", "author")
    opened = []
    try:
        for path in ("/api/events", "/board/stream"):
            conn, status, _ = _open_stream(stack, stack.token, path)
            opened.append(conn)
            assert status == 200

        for _ in range(3):  # the same user again: refused each time, logged once
            conn, status, raw = _open_stream(stack, stack.token)
            conn.close()
            assert status == 429
            assert b"retry-after: 5" in raw.lower()
            assert b'"error":"too_many_streams"' in raw.replace(b" ", b"")

        conn, status, _ = _open_stream(stack, author)  # another user: within both caps
        opened.append(conn)
        assert status == 200
        conn, status, raw = _open_stream(stack, author)  # the process is at its cap
        conn.close()
        assert status == 503 and b"retry-after: 5" in raw.lower()

        assert stack.client.get("/healthz").status_code == 200
        assert stack.client.get("/api/tasks/active").status_code == 200

        opened.pop().close()  # a stream ends: its place is free again

        def reopened() -> bool:
            conn, status, _ = _open_stream(stack, author)
            conn.close()
            return status == 200
        wait_until(reopened, 10, "a freed stream slot")
    finally:
        for conn in opened:
            conn.close()
    log = stack.web.log()
    assert log.count("streams open (the per-user cap)") == 1, log[-3000:]
    assert log.count("at the process cap") == 1
