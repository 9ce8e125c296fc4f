"""Fan-out of live events to many open streams, measured over HTTP against a running server.

    .venv/bin/python bench/bench_fanout.py [--clients 500,2000] [--paths api,board]
        [--rate 50] [--seconds 4] [--burst 20] [--flood 1000] [--web-workers 1]

Starts its own redis-server and web server (Redis mode, real `python -m webapp`), opens N
streams from one asyncio process with a raw-socket reader, and publishes task events through
the same publish path the workers use (`RedisEventBus.publish`), from a thread of this process
so that publish and receipt times come from one clock. For each stream path and client count:

- freshness: events at `--rate`/s for `--seconds` → delay from publish to each client, p50/p99;
- burst: `--burst` tasks' events at once → time until every client has all of them;
- flood: `--flood` events as fast as they publish → delivered messages per second (on the board
  a client that fell behind gets each row's latest state, so a row's superseded events count
  as delivered once the newer one arrives);
- KB per client (web process RSS with the streams open minus before), Redis connections.

With `--before DIR`, every scenario runs against that checkout too, one after the other in
the same run (the way to compare two versions on a shared machine).

The reader runs in the same 2-core machine as the server: at 2,000 clients its own work is part
of the measured delay, so the figures are upper bounds.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvloop
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.events import RedisEventBus  # noqa: E402
from jobs.task_stats import percentile as pct  # noqa: E402  (the product's percentile rule)
from tests.support import PYTHON, Proc, RedisServer, free_port, wait_until  # noqa: E402

PATHS = {"api": "/api/events", "board": "/board/stream"}
ID = re.compile(rb"\nid: ([^\s]+)")  # (no "^|" alternative: it would make the scan 15 × slower)


def event_ids(messages: bytes) -> list[bytes]:
    """The ids of whole messages (as StreamParser.feed returns them), in order."""
    ids = ID.findall(messages)
    if messages.startswith(b"id: "):
        ids.insert(0, messages[4:messages.index(b"\n")])
    return ids


class StreamParser:
    """A chunked event-stream body, fed as it arrives in any split: the messages completed
    by each piece, and whether the response ended (its last chunk came).

    The reads of a client that fell behind cut messages anywhere, also between the blank
    line that ends one message and the `id:` line of the next: the message is only read once
    it is whole, from its first line.
    """

    __slots__ = ("_raw", "_left", "_text", "ended")

    def __init__(self) -> None:
        self._raw = b""    # chunked bytes not decoded yet
        self._left = -1    # data bytes left in the current chunk, + its CRLF; -1: at a size line
        self._text = b""   # decoded bytes after the last complete message
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        """The messages `data` completes (whole, each ending in a blank line), or b""."""
        raw, pos, text = self._raw + data, 0, [self._text]
        while pos < len(raw) and not self.ended:
            if self._left < 0:
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(raw[pos:eol].split(b";")[0], 16)
                pos = eol + 2
                if size == 0:
                    self.ended = True
                    break
                self._left = size + 2
            if self._left > 2:
                piece = raw[pos:pos + self._left - 2]
                pos += len(piece)
                self._left -= len(piece)
                text.append(piece)
            crlf = min(self._left, len(raw) - pos)  # the chunk's closing CRLF: not body
            pos += crlf
            self._left -= crlf
            if self._left == 0:
                self._left = -1
        self._raw = raw[pos:]
        body = b"".join(text)
        cut = body.rfind(b"\n\n") + 2
        if cut < 2:
            self._text = body
            return b""
        self._text = body[cut:]
        return body[:cut]


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """redis-server + one web server (with `web_workers` processes) on a fresh data folder."""

    def __init__(self, tmp: Path, web_workers: int, extra_env: dict[str, str] | None = None,
                 root: Path = ROOT) -> None:
        self.tmp, self.root = tmp, root
        tmp.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(tmp)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "REDIS_URL": self.redis.url, "DATA_DIR": str(tmp / "data"),
                    "LOG_LEVEL": "WARNING", "PYTHONPATH": str(root), "SSE_KEEPALIVE": "15",
                    "STREAM_LIMIT_PER_USER": "100000",  # all streams are one user here
                    **(extra_env or {})}
        self.token = self.create_user("bench@example.com", "manager")
        cmd = [PYTHON, "-m", "webapp", "--port", str(self.port)]
        if web_workers > 1:
            cmd += ["--workers", str(web_workers)]
        self.web = Proc("web", cmd, self.env, tmp)
        self.workers: list[Proc] = []
        client = httpx.Client(base_url=self.url, timeout=5)
        wait_until(lambda: client.get("/healthz").status_code in (200, 503), 30, "web server")
        self.client = client
        self.client.headers["Authorization"] = f"Bearer {self.token}"

    def create_user(self, email: str, role: str, password: str | None = None) -> str:
        """An account made with the command line; its API token."""
        out = subprocess.run([PYTHON, "-m", "webapp", "create-user", "--email", email, "--role",
                              role, "--token", *(["--password", password] if password else [])],
                             cwd=self.tmp, env=self.env, capture_output=True, text=True,
                             check=True)
        return out.stdout.strip().splitlines()[-1]

    def start_workers(self, concurrency: int, nice: int = 0) -> None:
        cmd = [PYTHON, str(self.root / "huey_worker.py"), "--workers", str(concurrency)]
        self.workers.append(Proc("worker", ["nice", "-n", str(nice), *cmd] if nice else cmd,
                                 self.env, self.tmp))
        wait_until(lambda: self.client.get("/api/health").json()["task_queue_status"]["workers"],
                   30, "a live worker")

    def pids(self) -> list[int]:
        """The web process and its children (the serving processes)."""
        out = subprocess.run(["pgrep", "-g", str(self.web.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()] or [self.web.pid]

    def rss_kb(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                pass
        return total

    def cpu_seconds(self) -> float:
        """CPU time used so far by the web processes."""
        ticks = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                ticks += int(fields[11]) + int(fields[12])
            except FileNotFoundError:
                pass
        return ticks / os.sysconf("SC_CLK_TCK")

    def redis_connections(self) -> int:
        return redis.Redis.from_url(self.redis.url).info("clients")["connected_clients"]

    def sample_task(self) -> dict:
        """A real task record (queued, never run: no workers) to publish changes of."""
        response = self.client.post("/api/books", json={
            "title": "The Lighthouse Keeper's Daughter", "author": "Mara Ellison",
            "genre": "literary fiction", "blurb": "On a storm-battered island, Nell keeps the "
            "light her father can no longer tend.", "keywords": ["lighthouse"],
            "link": "https://books.example.com/lighthouse"})
        assert response.status_code == 201, response.text
        response = self.client.post("/api/generate-posts", json={
            "platforms": ["twitter"], "count_per_platform": 1, "async": True})
        assert response.status_code == 202, response.text
        return self.client.get(f"/api/task-status/{response.json()['task_id']}").json()

    def stop(self) -> None:
        self.client.close()
        for proc in [self.web, *self.workers]:
            proc.stop()
        self.redis.stop()


class Clients:
    """N raw-socket SSE readers in this process's event loop, each a protocol fed by the loop
    (a task per client awaiting a StreamReader cost a third of this process's CPU, and at
    2,000 clients the reader's own core was the limit of what it measured)."""

    def __init__(self, server: Server, path: str, n: int) -> None:
        self.server, self.path, self.n = server, path, n
        self.published: dict[bytes, float] = {}   # event id → publish time
        self.delays: list[float] = []
        self.received = [0] * n                   # ids seen per client
        self.last_seen: list[bytes | None] = [None] * n
        self.live = [False] * n
        self.ended = 0
        self.open = 0
        self.refused: dict[int, int] = {}
        self._tasks: list[asyncio.Task] = []
        self._streams: list[_Stream] = []

    async def start(self) -> None:
        self._connecting = asyncio.Semaphore(100)  # the listen backlog drops SYN floods
        self._tasks = [asyncio.create_task(self._open(i)) for i in range(self.n)]
        deadline = time.monotonic() + 180
        while self.open + sum(self.refused.values()) + self.ended < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.open} of {self.n} streams opened")
            await asyncio.sleep(0.05)

    async def _open(self, i: int) -> None:
        request = (f"GET {self.path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
                   f"{self.server.token}\r\nAccept: text/event-stream\r\n\r\n").encode()
        loop = asyncio.get_running_loop()
        async with self._connecting:
            answered = loop.create_future()
            await loop.create_connection(lambda: _Stream(self, i, request, answered),
                                         "127.0.0.1", self.server.port)
            await answered

    def _ended(self, i: int, was_open: bool) -> None:
        if was_open:
            self.open -= 1
            self.live[i] = False
        self.ended += 1

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for stream in self._streams:
            stream.close()
        await asyncio.sleep(0)


class _Stream(asyncio.Protocol):
    """One client: its response head, then its messages' ids and their delays."""

    def __init__(self, clients: Clients, i: int, request: bytes, answered: asyncio.Future) -> None:
        self.clients, self.i, self.request, self.answered = clients, i, request, answered
        self.head = b""
        self.parser: StreamParser | None = None
        self.transport: asyncio.Transport | None = None
        self.gone = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.clients._streams.append(self)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        clients = self.clients
        if self.parser is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(self.head.split(b" ", 2)[1])
            data, self.head = self.head[end + 4:], b""
            if not self.answered.done():
                self.answered.set_result(None)
            if status != 200:
                clients.refused[status] = clients.refused.get(status, 0) + 1
                self.gone = True  # refused: not counted as opened nor as ended
                self.transport.close()
                return
            clients.open += 1
            clients.live[self.i] = True
            self.parser = StreamParser()
            if not data:
                return
        ids = event_ids(self.parser.feed(data))
        if ids:
            clients.received[self.i] += len(ids)
            clients.last_seen[self.i] = ids[-1]
            published, delays = clients.published, clients.delays
            for event_id in ids:
                sent = published.get(event_id)
                if sent is not None:
                    delays.append(now - sent)
        if self.parser.ended:
            self.close()

    def connection_lost(self, exc) -> None:
        if not self.answered.done():
            self.answered.set_result(None)
        self.close()

    def close(self) -> None:
        if not self.gone:
            self.gone = True
            self.clients._ended(self.i, self.parser is not None)
        if self.transport is not None:
            self.transport.close()


class Publisher:
    """Publishes task events the way workers do, recording when each one was sent."""

    def __init__(self, redis_url: str, task: dict) -> None:
        self.bus = RedisEventBus(redis_url, 100_000)
        self.task = task

    def event(self, n: int) -> dict:
        statuses = ("PENDING", "STARTED", "STARTED", "SUCCESS")
        task_id = f"{self.task['task_id'][:24]}{n % 20:08d}"  # 20 rows change over and over
        return {"kind": "task", "task": {**self.task, "task_id": task_id,
                                         "status": statuses[n % 4],
                                         "progress": {"done": n % 4, "total": 4}}}

    def publish(self, published: dict[bytes, float], n: int) -> bytes:
        sent = time.perf_counter()
        event_id = self.bus.publish(self.event(n)).encode()
        published[event_id] = sent
        return event_id

    def at_rate(self, published: dict, rate: float, seconds: float) -> None:
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            due = start + n / rate   # open loop: the schedule does not wait for anyone
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.publish(published, n)

    def burst(self, published: dict, count: int) -> list[bytes]:
        return [self.publish(published, n) for n in range(count)]


async def wait_all(clients: Clients, last: bytes, timeout: float) -> bool:
    """Wait until every client still connected has seen `last` (or a later id)."""
    position = _pos(last)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(seen is not None and _pos(seen) >= position
               for seen, live in zip(clients.last_seen, clients.live) if live):
            return True
        await asyncio.sleep(0.002)
    behind = [seen for seen, live in zip(clients.last_seen, clients.live)
              if live and (seen is None or _pos(seen) < position)]
    print(f"  ({len(behind)} streams had not seen {last.decode()} after {timeout:g}s)", flush=True)
    return False


def _pos(event_id: bytes) -> tuple[int, int]:
    ms, _, seq = event_id.partition(b":")[2].partition(b"-")
    return int(ms), int(seq)


async def scenario(server: Server, publisher: Publisher, path: str, n: int, args) -> dict:
    rss_before = server.rss_kb()
    redis_before = server.redis_connections()
    clients = Clients(server, PATHS[path], n)
    await clients.start()
    opened = clients.open
    loop = asyncio.get_running_loop()
    # Warm up: one event through every stream.
    last = await loop.run_in_executor(None, publisher.burst, {}, 1)
    await wait_all(clients, last[-1], 60)
    rss_open = server.rss_kb()
    redis_open = server.redis_connections()

    clients.delays.clear()
    clients.published.clear()
    started, server_cpu, own_cpu = time.perf_counter(), server.cpu_seconds(), time.process_time()
    await loop.run_in_executor(None, publisher.at_rate, clients.published, args.rate, args.seconds)
    last_rate = max(clients.published, key=_pos)
    await wait_all(clients, last_rate, 30)
    fresh = list(clients.delays)
    wall = time.perf_counter() - started
    server_cpu = (server.cpu_seconds() - server_cpu) / wall
    own_cpu = (time.process_time() - own_cpu) / wall

    clients.published.clear()
    start = time.perf_counter()
    ids = await loop.run_in_executor(None, publisher.burst, clients.published, args.burst)
    burst = time.perf_counter() - start if await wait_all(clients, ids[-1], 60) else None

    clients.published.clear()
    start, flood_cpu = time.perf_counter(), server.cpu_seconds()
    ids = await loop.run_in_executor(None, publisher.burst, clients.published, args.flood)
    done = await wait_all(clients, ids[-1], 120)
    if not done:
        print(server.web.log()[-3000:], flush=True)
        out = subprocess.run(["ss", "-tn", f"sport = :{server.port}"], capture_output=True,
                             text=True).stdout.splitlines()[1:]
        queued = [line.split()[1:3] for line in out if line.split()[1:3] != ["0", "0"]]
        print(f"  server sockets with queued bytes (recv, send): {queued[:20]}", flush=True)
        out = subprocess.run(["ss", "-tn", f"dport = :{server.port}"], capture_output=True,
                             text=True).stdout.splitlines()[1:]
        queued = [line.split()[1:3] for line in out if line.split()[1:3] != ["0", "0"]]
        print(f"  reader sockets with queued bytes (recv, send): {queued[:20]}", flush=True)
    elapsed = time.perf_counter() - start
    flood_cpu = server.cpu_seconds() - flood_cpu
    still_open = clients.open
    await clients.stop()
    return {
        "path": PATHS[path], "clients": opened, "refused": dict(clients.refused),
        "cut_off": opened - still_open,
        "p50_ms": pct(fresh, 0.5) * 1000, "p99_ms": pct(fresh, 0.99) * 1000,
        "burst_s": burst, "flood_msgs_per_s": still_open * args.flood / elapsed if done else None,
        "per_cpu_s": still_open * args.flood / flood_cpu if done and flood_cpu else None,
        "kb_per_client": (rss_open - rss_before) / max(opened, 1),
        "redis_conns": f"{redis_before}→{redis_open}", "cpu": (server_cpu, own_cpu),
    }


def show(label: str, r: dict) -> None:
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    print(f"{label:<7} {r['path']:<14} {r['clients']:>6} {fmt(r['p50_ms'], '9.1f')}"
          f" {fmt(r['p99_ms'], '9.1f')} {fmt(r['burst_s'], '9.3f')}"
          f" {fmt(r['flood_msgs_per_s'], '12,.0f')} {fmt(r['per_cpu_s'], '12,.0f')}"
          f" {r['kb_per_client']:8.1f}  {r['redis_conns']:>7} {r['cpu'][0]:4.0%}/{r['cpu'][1]:4.0%}"
          f" {r['refused'] or ''}" + (f" {r['cut_off']} cut off" if r["cut_off"] else ""),
          flush=True)


async def run(args) -> None:
    raise_nofile()
    trees = [("after", ROOT)] + ([("before", Path(args.before).resolve())] if args.before else [])
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        servers = []
        try:
            for label, root in trees:
                server = Server(Path(tmp) / label, args.web_workers, root=root)
                servers.append((label, server, Publisher(server.redis.url, server.sample_task())))
            print(f"web processes: {args.web_workers}; rate {args.rate:g}/s for {args.seconds:g}s, "
                  f"burst {args.burst}, flood {args.flood} events; CPU: of the web process(es) "
                  f"and of this reader process, during the rate phase", flush=True)
            print(f"{'':<7} {'path':<14} {'conns':>6} {'p50 ms':>9} {'p99 ms':>9} {'burst s':>9}"
                  f" {'flood msg/s':>12} {'msg/CPU-s':>12} {'KB/conn':>8}  {'redis':>7} CPU")
            for path in args.paths.split(","):
                for n in (int(c) for c in args.clients.split(",")):
                    for label, server, publisher in servers:
                        show(label, await scenario(server, publisher, path, n, args))
        finally:
            for _, server, _ in servers:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="500")
    parser.add_argument("--paths", default="api,board")
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--before", help="another checkout (e.g. a worktree of an older "
                        "commit) to measure in the same run, scenario by scenario")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers on the way out
    asyncio.run(run(args), loop_factory=uvloop.new_event_loop)  # as the web server runs


if __name__ == "__main__":
    main()
