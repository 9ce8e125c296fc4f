"""A burst of task changes reaches every open stream of a real server, slow readers included.

Many streams over HTTP against Hypercorn (the streams' chunks go straight to their sockets),
a third of them reading nothing until the burst is over, so that the server's buffers for
them fill and their writes wait for the client (the pump hands them to their own tasks). Every
`/api/events` stream must receive every event, in order; every board must end with each
task's final state (a board that fell behind gets each row's latest state).
"""
from __future__ import annotations

import asyncio
import json
import re
import socket
import threading

from bench.bench_fanout import StreamParser
from jobs.events import RedisEventBus

TASKS = 12
ROUNDS = 30   # STARTED changes per task before its SUCCESS
# (path, fast readers, slow readers)
STREAMS = (("/api/events", 20, 8), ("/board/stream", 40, 20))
# Each /api/events stream carries about 6 MB: past what the kernel buffers for a stalled
# client (about 4 MB here), so the server's own buffer for it fills and its writes wait.
PADDING = "p" * 16_000

ROW = re.compile(rb'<tr id="task-([^"]+)"[^>]*?data-status="([A-Z]+)"')


def _events(base: dict) -> list[dict]:
    """Round by round, every task changes; the last round makes each SUCCESS."""
    out = []
    for r in range(ROUNDS + 1):
        for t in range(TASKS):
            final = r == ROUNDS
            out.append({"kind": "task", "task": {
                **base, "task_id": f"{base['task_id'][:20]}{t:012d}",
                "status": "SUCCESS" if final else "STARTED", "padding": PADDING,
                "progress": {"done": r, "total": ROUNDS}, "version": r + 2}})
    return out


class _Stream:
    def __init__(self, path: str, slow: bool) -> None:
        self.path, self.slow = path, slow
        self.parser = StreamParser()
        self.ids: list[str] = []
        self.final: dict[str, str] = {}   # task id → its latest status seen
        self.reader: asyncio.StreamReader | None = None
        self.started = False

    def open(self, port: int, token: str) -> None:
        """Send the request and read up to the stream's first message (`retry:`,
        `: connected`), which says that it follows the events."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "
                     f"{token}\r\nAccept: text/event-stream\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        self._take(self.parser.feed(rest))
        while not self.started:
            self._take(self.parser.feed(sock.recv(4096)))
        self.sock = sock

    async def read(self) -> None:
        """From now on, read what arrives (a slow reader reads nothing before this)."""
        self.sock.setblocking(False)
        self.reader, self.writer = await asyncio.open_connection(sock=self.sock,
                                                                 limit=1 << 22)

    async def _read_until(self, done, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                data = await self.reader.read(1 << 16)
                assert data, f"{self.path}: the server closed the stream"
                assert not self.parser.ended, f"{self.path}: the stream ended"
                self._take(self.parser.feed(data))

    def _take(self, messages: bytes) -> None:
        self.started = self.started or bool(messages)
        for block in messages.split(b"\n\n"):
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n")
                          if b": " in line and not line.startswith(b":"))
            if b"id" in fields:
                self.ids.append(fields[b"id"].decode())
            if self.path == "/api/events" and fields.get(b"event") == b"task":
                task = json.loads(fields[b"data"])["task"]
                self.final[task["task_id"]] = task["status"]
            for task_id, status in ROW.findall(block):
                self.final[task_id.decode()] = status.decode()

    async def finish(self, wanted: dict[str, str], timeout: float) -> None:
        try:
            await self._read_until(
                lambda: all(self.final.get(t) == s for t, s in wanted.items()), timeout)
        except TimeoutError:
            pass  # said by the test's assertion, with every stream's state

    def __repr__(self) -> str:
        return (f"<{self.path} {'slow' if self.slow else 'fast'}: {len(self.ids)} ids, "
                f"final {sorted(self.final.values()).count('SUCCESS')} SUCCESS>")

    def close(self) -> None:
        self.writer.close()


def test_a_burst_reaches_every_stream_with_every_tasks_final_state(fresh_stack):
    stack = fresh_stack("redis", STREAM_LIMIT_PER_USER="1000", SSE_KEEPALIVE="15")
    stack.worker_args = []  # the burst is published directly: no worker changes these tasks
    stack.start()
    base = stack.task(stack.queue(platforms=["twitter"], count_per_platform=1))
    events = _events(base)
    wanted = {e["task"]["task_id"]: "SUCCESS" for e in events}
    bus = RedisEventBus(stack.env["REDIS_URL"], 100_000)

    async def run() -> list[_Stream]:
        streams = [_Stream(path, slow=n >= fast) for path, fast, slow in STREAMS
                   for n in range(fast + slow)]
        for stream in streams:
            stream.open(stack.port, stack.token)
        fast = [s for s in streams if not s.slow]
        for stream in fast:
            await stream.read()
        published: list[str] = []
        # Published from a thread as fast as Redis takes them, while the fast readers read.
        done = threading.Event()

        def publish() -> None:
            published.extend(bus.publish(e) for e in events)
            done.set()

        threading.Thread(target=publish, daemon=True).start()

        await asyncio.gather(*(s.finish(wanted, 60) for s in fast))
        assert done.wait(30)
        # The slow readers start reading only now, with a backlog queued for each.
        for stream in streams:
            if stream.slow:
                await stream.read()
        await asyncio.gather(*(s.finish(wanted, 60) for s in streams if s.slow))
        behind = [s for s in streams if s.final != wanted]
        assert not behind, behind
        for stream in streams:
            if stream.path == "/api/events":  # every event, in order, once
                assert stream.ids[-len(published):] == published, stream.slow
            stream.close()
        return streams

    try:
        streams = asyncio.run(run())
    finally:
        bus._sync.close()
    assert all(s.final == wanted for s in streams)
