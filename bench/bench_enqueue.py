"""Single enqueues over HTTP: `POST /api/status-check` one request at a time, side by side.

    .venv/bin/python bench/bench_enqueue.py [--requests 1000] [--rounds 3]
        [--baseline DIR] [--floor] [--connections 1,4] [--web-processes 1]
        [--database sqlite|postgres]

Starts one redis-server (and PostgreSQL with `--database postgres`) and one web server
(`python -m webapp`, a manager's API token) per source tree: this one, and with `--baseline`
another checkout (e.g. `git worktree add /tmp/old <commit>`) on a port and Redis database of
its own, started, warmed and stopped the same way. Each round then measures, for every tree
in turn and per connection count C:

- `GET /healthz` (one database read in a thread: the floor of a request that touches the
  database) and `POST /api/status-check` (a queued task: record, timeline row, creation event,
  queue message), `--requests` each, spread over C keep-alive connections (one client process
  per connection, the standard library's HTTP client: lean, so the client takes little of the
  cores the server needs);
- requests/s and the web processes' CPU milliseconds per request.

With `--floor`, bench/floor_app.py is measured the same way: Hypercorn answering every
request at once (no framework, no database, no Redis), the most one client can get here.
Rounds alternate the servers so that load from elsewhere on the machine falls on both; it
prints every round and then each figure's range.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_pipeline import keep_alive_requests, tree_cpu  # noqa: E402
from tests.support import PostgresServer, Proc, RedisServer, free_port, wait_until  # noqa: E402

WARM = 200  # untimed requests of each kind before the first round


class Server:
    """One web server running the code of `tree` (or, for the name "floor", bench/floor_app.py:
    Hypercorn answering every request at once, the server's own cost)."""

    def __init__(self, name: str, tree: Path, tmp: Path, redis_url: str, database_url: str | None,
                 processes: int) -> None:
        self.name, self.tree = name, tree
        home = tmp / name
        home.mkdir()
        if name == "floor":
            self.token, self.port = "none", free_port()
            self.proc = Proc("floor", [sys.executable, str(ROOT / "bench" / "floor_app.py"),
                                       str(self.port)], dict(os.environ), home)
            wait_until(self._ready, 60, "the floor server")
            return
        self.env = {**os.environ, "REDIS_URL": redis_url, "DATA_DIR": str(home / "data"),
                    "LOG_LEVEL": "WARNING", "PYTHONPATH": str(tree)}
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        out = subprocess.run([sys.executable, "-m", "webapp", "create-user", "--email",
                              "bench@example.com", "--role", "manager", "--token"],
                             env=self.env, cwd=home, capture_output=True, text=True, check=True)
        self.token = out.stdout.strip().splitlines()[-1]
        self.port = free_port()
        cmd = [sys.executable, "-m", "webapp", "--port", str(self.port)]
        if processes > 1:
            cmd += ["--workers", str(processes)]
        self.proc = Proc(f"web-{name}", cmd, self.env, home)
        wait_until(self._ready, 60, f"the {name} web server")

    def _ready(self) -> bool:
        if not self.proc.alive():
            raise RuntimeError(f"the {self.name} web server exited:\n{self.proc.log()}")
        try:
            return keep_alive_requests(self.port, self.token, "GET", "/healthz", 1, 200) > 0
        except OSError:
            return False

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.stop()


def _client(port, token, method, path, n, status, start, out) -> None:
    start.wait()
    began = time.perf_counter()
    keep_alive_requests(port, token, method, path, n, status)
    out.put((began, time.perf_counter()))


def measure(server: Server, method: str, path: str, status: int, total: int,
            connections: int) -> tuple[float, float]:
    """(requests/s, web CPU ms per request) for `total` requests over `connections`."""
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    share = total // connections
    clients = [ctx.Process(target=_client, args=(server.port, server.token, method, path, share,
                                                 status, start, out)) for _ in range(connections)]
    for c in clients:
        c.start()
    cpu0 = server.cpu()
    start.set()
    spans = [out.get(timeout=600) for _ in clients]
    cpu1 = server.cpu()
    for c in clients:
        c.join(10)
        if c.exitcode != 0:
            raise RuntimeError(f"a client of {method} {path} failed (exit {c.exitcode})")
    elapsed = max(e for _, e in spans) - min(b for b, _ in spans)
    done = share * connections
    return done / elapsed, (cpu1 - cpu0) * 1000 / done


def _range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,.0f}" if round(lo) == round(hi) else f"{lo:,.0f}–{hi:,.0f}"


def _range_ms(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="per kind, round and tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to run side by side")
    parser.add_argument("--connections", default="1",
                        help="comma-separated keep-alive connection counts (default 1)")
    parser.add_argument("--web-processes", type=int, default=1,
                        help="python -m webapp --workers N (default 1)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--floor", action="store_true",
                        help="also measure bench/floor_app.py (Hypercorn doing nothing)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    counts = [int(c) for c in args.connections.split(",")]
    trees = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else []) \
        + ([("floor", ROOT)] if args.floor else [])
    kinds = [("healthz", "GET", "/healthz", 200), ("status-check", "POST", "/api/status-check", 202)]

    with tempfile.TemporaryDirectory(prefix="bench-enqueue-") as tmp_dir:
        tmp = Path(tmp_dir)
        redis = RedisServer(tmp)
        postgres = PostgresServer() if args.database == "postgres" else None
        servers: list[Server] = []
        try:
            for name, tree in trees:
                db_url = postgres.database(f"bench_{name}") if postgres else None
                servers.append(Server(name, tree, tmp, redis.new_database(), db_url,
                                      args.web_processes))
            for server in servers:
                for _, method, path, status in kinds:
                    measure(server, method, path, status, WARM, 1)
            results: dict[tuple, list[tuple[float, float]]] = {}
            for r in range(args.rounds):
                order = servers if r % 2 == 0 else servers[::-1]
                for connections in counts:
                    for server in order:
                        for kind, method, path, status in kinds:
                            rate, cpu = measure(server, method, path, status, args.requests,
                                                connections)
                            results.setdefault((server.name, kind, connections), []).append((rate, cpu))
                            print(f"round {r + 1} {server.name:8} {kind:12} {connections} conn: "
                                  f"{rate:7,.0f}/s  web CPU {cpu:.2f} ms/request", flush=True)
            print(f"\n{args.requests} requests per figure, {args.rounds} rounds, "
                  f"{args.web_processes} web process(es), {args.database}; load average "
                  f"{os.getloadavg()[0]:.1f} at the end")
            for (name, kind, connections), values in results.items():
                print(f"{name:8} {kind:12} {connections} conn: {_range([v[0] for v in values])}/s, "
                      f"web CPU {_range_ms([v[1] for v in values])} ms/request")
            if args.json:
                args.json.write_text(json.dumps([
                    {"tree": k[0], "kind": k[1], "connections": k[2], "rates": [v[0] for v in vs],
                     "cpu_ms": [v[1] for v in vs]} for k, vs in results.items()], indent=1))
        finally:
            for server in servers:
                server.stop()
            if postgres is not None:
                postgres.stop()
            redis.stop()


if __name__ == "__main__":
    main()
