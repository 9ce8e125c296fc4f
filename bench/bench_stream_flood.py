"""One author opening many event streams at once, against a running server over HTTP.

    .venv/bin/python bench/bench_stream_flood.py [--streams 1000] [--path /api/events]
        [--limit-per-user 32] [--seconds 3]

Starts its own redis-server and web server (Redis mode, one process, the default caps unless
`--limit-per-user`), then: other people's requests alone for `--seconds` (`/healthz`, a
manager's `/api/tasks/active`, a viewer signing in); then the same while one author opens
`--streams` streams as fast as 200 connections at a time allow, and keeps the accepted ones
open. Prints what the author got (200s, 429s with Retry-After and a JSON body), the others'
answers and p50/p99 before and during the flood, and the web log's growth and its lines
about the cap.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fanout import Server, pct, raise_nofile  # noqa: E402
from jobs.settings import Settings  # noqa: E402

PASSWORD = "correct horse battery"
CAP_LINE = "streams open (the per-user cap)"


class Stream:
    """One raw connection asking for a stream: its status, headers and (refused) body."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, port: int, path: str, token: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        self.status = int(head[0].split(" ", 2)[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in head[1:] if line)}
        if self.status == 200:
            self.writer = writer  # kept open, as a flooding client would
            return
        self.body = await reader.readexactly(int(self.headers.get("content-length", 0)))
        writer.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def flood(port: int, path: str, token: str, n: int, concurrency: int = 200) -> list[Stream]:
    """`n` stream requests from one user, `concurrency` connections at a time."""
    gate = asyncio.Semaphore(concurrency)
    streams = [Stream() for _ in range(n)]

    async def one(stream: Stream) -> None:
        async with gate:
            try:
                await stream.open(port, path, token)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                stream.status = f"no answer ({type(exc).__name__})"

    await asyncio.gather(*(one(s) for s in streams))
    return streams


class Others:
    """Everyone else, while the flood runs: health checks, a manager's API, a sign-in."""

    def __init__(self, url: str, manager_token: str, viewer_email: str) -> None:
        self.url, self.manager_token, self.viewer_email = url, manager_token, viewer_email
        self.answers: dict[str, list[tuple[int, float]]] = collections.defaultdict(list)

    async def run(self, until: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            await asyncio.gather(
                self._every(until, 0.05, "healthz", lambda: client.get("/healthz")),
                self._every(until, 0.05, "manager API", lambda: client.get(
                    "/api/tasks/active",
                    headers={"Authorization": f"Bearer {self.manager_token}"})),
                self._every(until, 0.5, "sign-in", lambda: client.post("/login", data={
                    "email": self.viewer_email, "password": PASSWORD},
                    headers={"Origin": self.url})))

    async def _every(self, until: asyncio.Event, interval: float, name: str, call) -> None:
        while not until.is_set():
            start = time.perf_counter()
            response = await call()
            self.answers[name].append((response.status_code, time.perf_counter() - start))
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - start)))

    def summary(self) -> dict[str, dict]:
        out = {}
        for name, answers in self.answers.items():
            times = [t for _, t in answers]
            out[name] = {"n": len(answers), "statuses": dict(collections.Counter(s for s, _ in answers)),
                         "p50_ms": pct(times, 0.5) * 1000, "p99_ms": pct(times, 0.99) * 1000}
        return out


async def others_for(seconds: float | None, server: Server, viewer: str,
                     during: asyncio.Future | None = None) -> dict:
    """Other people's answers for `seconds`, or for as long as `during` runs."""
    others, stop = Others(server.url, server.token, viewer), asyncio.Event()
    task = asyncio.create_task(others.run(stop))
    if during is not None:
        await during
    else:
        await asyncio.sleep(seconds)
    stop.set()
    await task
    return others.summary()


async def run(args) -> None:
    raise_nofile()
    env = {"STREAM_LIMIT_PER_USER": str(args.limit_per_user
                                        or Settings.model_fields["stream_limit_per_user"].default)}
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        server = Server(Path(tmp), 1, env)
        try:
            author = server.create_user("flood@example.com", "author")
            viewer = "viewer@example.com"
            server.create_user(viewer, "viewer", PASSWORD)
            log_before = len(server.web.log())
            before = await others_for(args.seconds, server, viewer)

            started = time.perf_counter()
            flooding = asyncio.ensure_future(flood(server.port, args.path, author, args.streams))
            during = await others_for(None, server, viewer, flooding)
            streams = flooding.result()
            flood_s = time.perf_counter() - started
            after = await others_for(args.seconds, server, viewer)  # the accepted streams open

            log = server.web.log()[log_before:]
            if args.show_log:
                print(log[-4000:])
            for stream in streams:
                stream.close()
        finally:
            server.stop()
    statuses = collections.Counter(s.status for s in streams)
    refused = [s for s in streams if s.status != 200]
    well_formed = sum(1 for s in refused if "retry-after" in s.headers
                      and "error" in json.loads(s.body or b"{}")
                      and "message" in json.loads(s.body or b"{}"))
    print(f"one author, {args.streams} requests for {args.path} in {flood_s:.2f}s: "
          f"{dict(statuses)}; refusals with Retry-After and a JSON error: {well_formed} of "
          f"{len(refused)}")
    print(f"{'others':<12} {'phase':<22} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}  answers")
    for name in ("healthz", "manager API", "sign-in"):
        for phase, summary in (("alone", before), ("during the flood", during),
                               ("with the streams open", after)):
            r = summary.get(name)
            if r:
                print(f"{name:<12} {phase:<22} {r['n']:>5} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}"
                      f"  {r['statuses']}")
    print(f"web log: {len(log.encode())} bytes during the flood, {log.count(CAP_LINE)} line(s) "
          f"about the per-user cap")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--path", default="/api/events")
    parser.add_argument("--limit-per-user", type=int, default=0,
                        help="STREAM_LIMIT_PER_USER (default: the product's default)")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--show-log", action="store_true", help="print the web log's tail")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers on the way out
    asyncio.run(run(args), loop_factory=uvloop.new_event_loop)


if __name__ == "__main__":
    main()
