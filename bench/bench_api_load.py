"""API latency on an idle server against the same server under full load, measured over HTTP.

    .venv/bin/python bench/bench_api_load.py [--rate 40] [--seconds 10] [--streams 300]
        [--stream-paths api,board] [--workers 4] [--web-workers 1] [--reader-nice 0]
        [--stream-server same|separate] [--worker-nice 0] [--database sqlite|postgres]
        [--apart] [--before DIR]

Starts its own redis-server, web server and worker processes (Redis mode, offline writer).
Open loop: requests leave on a fixed schedule whatever the answers do, and each latency is
measured from the moment its request was due, so a stalled server shows as the backlog it
causes. The mix: task status, active tasks, health, and a 3-post synchronous generation.

- idle: the queue paused with the loaded phase's work waiting in it, so that both phases
  read the same history;
- loaded: the queue resumed, every worker busy with queued 200-post generations, `--streams` event streams open
  (by default half /api/events, half /board/stream) receiving every change, read by a
  process of their own so that reading them does not delay the timed answers (its CPU is
  printed; `--reader-nice 19` gives the server the cores first, as viewers on other machines
  would).

Prints p50/p95/p99 for both phases and the loaded/idle ratio with a 95 % bootstrap interval
(resampling each phase's requests: the spread that chance alone gives one run), the web
process's CPU, and this process's own CPU and loop lag (p99 of how late a 5 ms sleep wakes:
the machine's scheduling delay, which every measured latency carries too). Client, server
and workers share the machine: on 2 cores the workers take CPU from the web process by
design of the test, so the ratio says how well requests keep their place under that pressure. With
`--apart`, both phases run with the API's web process alone on the first core and everything
else (this timing process, the streams' reader, Redis, PostgreSQL, a separate stream server,
the workers) on the others, the workers at SCHED_IDLE there, so that the rest never waits for
them: as when the clients, the servers and the workers have machines of their own. The ratio
then says what the load costs the API's process itself.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import types
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fanout import PATHS, ROOT, Clients, Server, pct, raise_nofile  # noqa: E402
from tests.support import PYTHON, PostgresServer, Proc, free_port, wait_until  # noqa: E402

MIX = ("status", "active", "health", "generate")


async def request(client: httpx.AsyncClient, kind: str, task_id: str) -> int:
    if kind == "status":
        response = await client.get(f"/api/task-status/{task_id}")
    elif kind == "active":
        response = await client.get("/api/tasks/active")
    elif kind == "health":
        response = await client.get("/api/health")
    else:
        response = await client.post("/api/generate-posts", json={
            "platforms": ["twitter", "mastodon", "linkedin"], "count_per_platform": 1})
    return response.status_code


async def open_loop(server: Server, rate: float, seconds: float, task_id: str) -> dict:
    """Latencies (from due time) of `rate` requests/s for `seconds`, cycling through MIX."""
    # Idle connections are let go before the server's 5 s keep-alive ends them: at the same
    # moment, a request sent on a connection being closed fails (httpx.ReadError).
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200,
                          keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=server.url, headers=server.client.headers,
                                 limits=limits, timeout=60) as client:
        for kind in MIX:  # warm every path and the connection pool
            await request(client, kind, task_id)
        latencies: list[float] = []
        by_kind: dict[str, list[float]] = {kind: [] for kind in MIX}
        errors: dict[int, int] = {}

        async def one(kind: str, due: float) -> None:
            status = await request(client, kind, task_id)
            latencies.append(time.perf_counter() - due)
            by_kind[kind].append(latencies[-1])
            if status >= 400:
                errors[status] = errors.get(status, 0) + 1

        lags: list[float] = []

        async def watch_loop() -> None:
            # How late this process's own loop wakes: its share of every measured latency.
            while True:
                due = time.perf_counter() + 0.005
                await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - due)

        watcher = asyncio.create_task(watch_loop())
        # This process's own pauses are not the server's latency: a full collection of its
        # heap stopped its loop for 70-80 ms (a few requests 50-130 ms late, in whichever
        # phase it fell: the ratio swung from x 0.95 to x 2.09 between runs of one version),
        # so what it holds by now is set aside from the collector's passes. And the phase
        # begins after the CPU counters are read (pgrep): the first request was 13-27 ms late.
        gc.collect()
        gc.freeze()
        cpu, own = server.cpu_seconds(), time.process_time()
        start = time.perf_counter()
        pending = []
        for n in range(int(rate * seconds)):
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            pending.append(asyncio.create_task(one(MIX[n % len(MIX)], due)))
        await asyncio.gather(*pending)
        wall = time.perf_counter() - start
        cpu, own = (server.cpu_seconds() - cpu) / wall, (time.process_time() - own) / wall
        watcher.cancel()
    return {"p50": pct(latencies, 0.5) * 1000, "p95": pct(latencies, 0.95) * 1000,
            "p99": pct(latencies, 0.99) * 1000, "latencies": latencies,
            "errors": errors, "cpu": cpu, "own_cpu": own,
            "lag": pct(lags, 0.99) * 1000,
            "kinds": {kind: (pct(values, 0.5) * 1000, pct(values, 0.99) * 1000)
                      for kind, values in by_kind.items()}}


def ratio_interval(idle: list[float], loaded: list[float], q: float = 0.99,
                   rounds: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap interval of one run's loaded/idle ratio of the q-quantile: how far it
    could move by chance alone, the p99 of 800 requests being their 8th slowest."""
    rng = random.Random(0)
    ratios = sorted(pct(rng.choices(loaded, k=len(loaded)), q)
                    / pct(rng.choices(idle, k=len(idle)), q) for _ in range(rounds))
    return ratios[int(0.025 * rounds)], ratios[int(0.975 * rounds) - 1]


def saturate(server: Server, tasks: int) -> None:
    """Queue enough large generations to keep every worker busy for the loaded phase, with
    the queue paused: the idle phase then sees the same history and waiting list as the
    loaded one (the workers drop the paused tasks' messages; resuming queues them again)."""
    with httpx.Client(base_url=server.url, headers=server.client.headers, timeout=60) as client:
        assert client.post("/api/queue/pause", json={}).status_code == 200
        for _ in range(tasks):
            response = client.post("/api/generate-posts", json={
                "platforms": ["twitter", "mastodon", "linkedin", "facebook", "instagram",
                              "threads", "bluesky", "tiktok"],
                "count_per_platform": 25, "async": True})
            assert response.status_code == 202, response.text
        wait_until(lambda: client.get("/api/health").json()["services"]["queue"][
            "messages_waiting"] == 0, 120, "the workers to set the paused messages aside")


def release(server: Server) -> None:
    """Resume the queue and wait until every worker slot is busy."""
    response = server.client.post("/api/queue/resume", json={}, timeout=120)
    assert response.status_code == 200, response.text
    def all_busy() -> bool:
        running, capacity = busy_workers(server)
        return running == capacity

    wait_until(all_busy, 60, "every worker slot busy")


class StreamReaders:
    """The loaded phase's open streams, read by a process of their own: in this one, reading
    every event of hundreds of streams would delay the timed requests' answers in this
    process's event loop, and the figures would measure the reader as much as the server."""

    def __init__(self, server: Server, counts: list[tuple[str, int]], nice: int = 0,
                 cpus: set[int] | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._out = context.Queue()
        self._proc = context.Process(target=_read_streams, daemon=True, args=(
            server.port, server.token, counts, nice, cpus, self._ready, self._stop, self._out))

    def start(self) -> None:
        self._proc.start()
        if not self._ready.wait(180):
            self._proc.kill()
            raise RuntimeError("the streams did not open within 180 s")

    def stop(self) -> tuple[int, float]:
        """Close the streams; how many events they received, and the share of a core the
        reading process used while they were open."""
        self._stop.set()
        delivered, share = self._out.get(timeout=60)
        self._proc.join(30)
        return delivered, share


def _read_streams(port: int, token: str, counts: list[tuple[str, int]], nice: int, cpus,
                  ready, stop, out) -> None:
    async def main() -> None:
        server = types.SimpleNamespace(port=port, token=token)
        groups = [Clients(server, path, n) for path, n in counts]
        for clients in groups:
            await clients.start()
        ready.set()
        cpu, wall = time.process_time(), time.monotonic()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, stop.wait)
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
        out.put((sum(sum(clients.received) for clients in groups), share))
        for clients in groups:
            await clients.stop()

    raise_nofile()
    os.nice(nice)
    if cpus:
        os.sched_setaffinity(0, cpus)
    asyncio.run(main(), loop_factory=uvloop.new_event_loop)


class StreamPeer:
    """A second web process on the same database and Redis, on a port of its own, serving
    the loaded phase's streams (`--stream-server separate`): the timed requests then go to
    a process that does no fan-out, which says how much of the ratio the fan-out's place
    in the API's process is."""

    def __init__(self, server: Server) -> None:
        self.port = free_port()
        self.token = server.token
        self.web = Proc("web-streams", [PYTHON, "-m", "webapp", "--port", str(self.port)],
                        server.env, server.tmp)
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5) as client:
            wait_until(lambda: client.get("/healthz").status_code in (200, 503), 30,
                       "the streams' web server")

    def stop(self) -> None:
        self.web.stop()


def cpu_split(apart: bool) -> tuple[set[int] | None, set[int] | None]:
    """The API's cores and everyone else's under `--apart` (the first core, and the rest);
    without it, None for both: nothing is placed."""
    if not apart:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--apart needs at least two cores")
    return {cpus[0]}, set(cpus[1:])


def pin(pid: int, cpus: set[int] | None, idle: bool = False) -> None:
    """Every thread of `pid` and of its descendants onto `cpus` (children started later
    inherit it); with `idle`, at SCHED_IDLE too (they run when nothing else wants the core).
    Nothing when `cpus` is None."""
    if cpus is None:
        return
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    todo = [pid]
    while todo:
        current = todo.pop()
        todo += parents.get(current, [])
        for thread in Path(f"/proc/{current}/task").glob("*"):
            try:
                os.sched_setaffinity(int(thread.name), cpus)
                if idle:
                    os.sched_setscheduler(int(thread.name), os.SCHED_IDLE, os.sched_param(0))
            except (FileNotFoundError, ProcessLookupError):
                pass


def busy_workers(server: Server) -> tuple[int, int]:
    workers = server.client.get("/api/health").json()["task_queue_status"]["workers"]
    alive = [w for w in workers if w["state"] == "alive"]
    return sum(len(w["running"]) for w in alive), sum(w["concurrency"] for w in alive)


async def phases(args, root: Path) -> dict:
    """Idle, then loaded, on a server of the checkout at `root`."""
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        extra = {"GENERATION_RATE_LIMIT": "1000000"}
        postgres = PostgresServer() if args.database == "postgres" else None
        if postgres is not None:
            extra["DATABASE_URL"] = postgres.database(f"bench_api_{root.name}")
        server = Server(Path(tmp), args.web_workers, extra, root=root)
        peer = None
        api_cpus, other_cpus = args.cpus
        pin(server.web.pid, api_cpus)
        for proc in [server.redis.proc] + ([postgres.proc] if postgres else []):
            pin(proc.pid, other_cpus)
        try:
            server.start_workers(args.workers, args.worker_nice)
            pin(server.workers[-1].pid, other_cpus, idle=True)
            task_id = server.sample_task()["task_id"]
            loop = asyncio.get_running_loop()
            print(f"{root.name}: queueing {args.queue} generations (paused)", flush=True)
            await loop.run_in_executor(None, saturate, server, args.queue)
            print(f"{root.name}: idle phase, web pid {server.web.pid}", flush=True)
            idle = await open_loop(server, args.rate, args.seconds, task_id)

            await loop.run_in_executor(None, release, server)
            paths = [PATHS[name] for name in args.stream_paths.split(",")]
            if args.stream_server == "separate":
                peer = StreamPeer(server)
                pin(peer.web.pid, other_cpus)
            streams = StreamReaders(peer or server, [  # the streams shared out between the paths
                (path, args.streams * (i + 1) // len(paths) - args.streams * i // len(paths))
                for i, path in enumerate(paths)], args.reader_nice, other_cpus)
            await loop.run_in_executor(None, streams.start)
            running, capacity = await loop.run_in_executor(None, busy_workers, server)
            print(f"{root.name}: loaded phase", flush=True)
            loaded = await open_loop(server, args.rate, args.seconds, task_id)
            running_after, _ = await loop.run_in_executor(None, busy_workers, server)
            delivered, reader_share = await loop.run_in_executor(None, streams.stop)
        except BaseException:
            print(f"web server running: {server.web.alive()}; its log:\n"
                  f"{server.web.log()[-3000:]}", flush=True)
            raise
        finally:
            if peer is not None:
                peer.stop()
            server.stop()
            if postgres is not None:
                postgres.stop()
    return {"idle": idle, "loaded": loaded, "running": running, "capacity": capacity,
            "running_after": running_after, "delivered": delivered,
            "reader_cpu": reader_share}


async def run(args) -> None:
    raise_nofile()
    args.cpus = cpu_split(args.apart)
    if args.apart:  # this timing process (and the threads it starts) away from the API's
        os.sched_setaffinity(0, args.cpus[1])
    trees = [("after", ROOT)] + ([("before", Path(args.before).resolve())] if args.before else [])
    results = [(label, await phases(args, root)) for label, root in trees]
    print(f"{args.rate:g} req/s for {args.seconds:g}s (status, active, health, 3-post sync "
          f"generation); loaded: every worker busy (WORKER_NICE {os.environ.get('WORKER_NICE', 10)}"
          f"{f', then nice {args.worker_nice}' if args.worker_nice else ''}), {args.streams} "
          f"streams open, served by {'a second' if args.stream_server == 'separate' else 'the same'}"
          f" web process; {args.database}"
          + ("; the API's process alone on one core, the rest on the others (workers idle-class)"
             if args.apart else ""))
    print(f"{'':<7} {'phase':<8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'web CPU':>8} {'own CPU':>8} {'own lag':>8}  errors")
    for label, r in results:
        for name in ("idle", "loaded"):
            p = r[name]
            print(f"{label:<7} {name:<8} {p['p50']:8.1f} {p['p95']:8.1f} {p['p99']:8.1f}"
                  f" {p['cpu']:8.0%} {p['own_cpu']:8.0%} {p['lag']:6.1f}ms  {p['errors'] or ''}")
        for name in ("idle", "loaded"):
            print(f"  {label} p50 / p99 by request, {name}: "
                  + ", ".join(f"{kind} {p50:.1f} / {p99:.0f} ms"
                              for kind, (p50, p99) in r[name]["kinds"].items()))
        print(f"  {label}: {r['running']}/{r['capacity']} worker slots busy at the start, "
              f"{r['running_after']} at the end, {r['delivered']} events delivered to the streams"
              f" (their reading process: {r['reader_cpu']:.0%} of a core, nice {args.reader_nice})")
        if r["running_after"] < r["capacity"]:
            print(f"  {label}: WARNING: the workers ran out of work during the loaded phase, "
                  f"which then measures less than full load: raise --queue")
    for label, r in results:
        low, high = ratio_interval(r["idle"]["latencies"], r["loaded"]["latencies"])
        print(f"{label}: loaded/idle p99 × {r['loaded']['p99'] / r['idle']['p99']:.2f} "
              f"(95 % interval of this run: × {low:.2f}–{high:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=40)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--stream-paths", default="api,board",
                        help="which streams the loaded phase opens (shared out evenly)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes' concurrency")
    # 200-post tasks take a worker about 0.1 s of CPU each: 600 keep four busy for a 10 s phase
    parser.add_argument("--queue", type=int, default=600, help="200-post tasks queued to load")
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--reader-nice", type=int, default=0,
                        help="niceness of the process reading the streams (19: its CPU goes to "
                        "the server first, as when the viewers are on other machines)")
    parser.add_argument("--stream-server", choices=("same", "separate"), default="same",
                        help="separate: the streams are served by a second web process (same "
                        "database and Redis), the timed requests by the first")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="started under `nice -n N` as well: on top of WORKER_NICE, which "
                        "they apply themselves (the environment's, or the default 10)")
    parser.add_argument("--apart", action="store_true",
                        help="the API's web process alone on one core, everything else on the "
                        "others (the workers at SCHED_IDLE)")
    parser.add_argument("--before", help="another checkout (e.g. a worktree of an older "
                        "commit) to measure the same way in the same run, after this one")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers on the way out
    asyncio.run(run(args), loop_factory=uvloop.new_event_loop)  # as the web server runs


if __name__ == "__main__":
    main()
