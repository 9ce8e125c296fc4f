"""The product on hosts of its own, under faults: nothing lost, every board live.

`make multihost` (root, Linux) builds a Redis host, a PostgreSQL host, two web hosts and
three worker hosts (plus a model host serving the fake model and a clients' host), each a
network namespace with its own address and hostname. It queues generation tasks through
both web hosts while boards (event-stream clients) watch each web host, and meanwhile:
cuts worker1 off the network for longer than WORKER_LOST_AFTER and heals it; SIGKILLs
every process of worker2 and starts it again; stops web1 (its boards move to web2); and
runs worker3 behind a link that delays what it sends by 200 ms ± 50 ms, with its clock
30 s ahead (tests/multihost/skewed_clock). At the end every task must be terminal and effective once, and every board
must have seen every event once. The last line sums it up.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.multihost.netbed import Bed, BedUnavailable, check_can_run
from tests.support import PYTHON, ROOT

PRODUCT_HOSTS = ["redis", "postgres", "web1", "web2", "worker1", "worker2", "worker3"]
HARNESS_HOSTS = ["model", "clients"]
PLATFORMS = ["twitter", "facebook", "linkedin"]
WORKER_LOST_AFTER = 4.0
SKEW_SECONDS = 30.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- hosts and their services ------------------------------------------------------------

class Services:
    def __init__(self, bed: Bed, run_dir: Path) -> None:
        self.bed = bed
        self.run_dir = run_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.secret = secrets.token_hex(16)  # one SECRET_KEY for both web hosts
        self.pg_base: Path | None = None

    def spawn(self, host: str, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Start `argv` on `host`, under the host's own name (a UTS namespace of its own)."""
        out = open(self.run_dir / f"{name}.log", "ab")
        wrapped = ["unshare", "--uts", "--", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *argv]
        proc = subprocess.Popen(self.bed.hosts[host].cmd(wrapped), env=env or dict(os.environ),
                                cwd=cwd or self.run_dir, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.run_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, httpx.TransportError, psycopg.OperationalError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_redis(svc: Services) -> str:
    host = svc.bed.hosts["redis"]
    data = svc.run_dir / "redis"
    data.mkdir(exist_ok=True)
    svc.spawn("redis", "redis", [shutil.which("redis-server"), "--bind", host.addr, "--port", "6379",
                                  "--protected-mode", "no", "--appendonly", "yes", "--save", "",
                                  "--dir", str(data)])
    import redis
    client = redis.Redis(host=host.addr, port=6379, socket_connect_timeout=1)
    wait_for(client.ping, 20, "Redis to answer")
    client.close()
    return f"{host.addr}:6379"


def start_postgres(svc: Services) -> str:
    host = svc.bed.hosts["postgres"]
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    bindir = Path(found[-1]).parent if found else Path(shutil.which("initdb")).parent
    base = Path(tempfile.mkdtemp(prefix="bma-multihost-pg-"))
    data = base / "pgdata"
    data.mkdir()
    account = pwd.getpwnam("postgres")  # PostgreSQL refuses to run as root
    for path in (base, data):
        os.chown(path, account.pw_uid, account.pw_gid)
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True, timeout=120)
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {host.addr.rsplit('.', 1)[0]}.0/24 trust\n")
        hba.write("host all all 127.0.0.1/32 trust\n")
    svc.spawn("postgres", "postgres", [*as_pg, str(bindir / "postgres"), "-D", str(data), "-p", "5432",
                                        "-k", str(data), "-c", f"listen_addresses={host.addr}",
                                        "-c", "fsync=off", "-c", "max_connections=400"])
    conninfo = f"host={host.addr} port=5432 user=postgres dbname=postgres connect_timeout=2"
    wait_for(lambda: psycopg.connect(conninfo).close() or True, 60, "PostgreSQL to accept connections")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE DATABASE bma")
    svc.pg_base = base
    return f"{host.addr}:5432"


def product_env(svc: Services, host: str, redis_at: str, pg_at: str, model_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "DATA_DIR")}
    data = svc.run_dir / host / "data"
    data.mkdir(parents=True, exist_ok=True)
    env.update({
        "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
        "REDIS_URL": f"redis://{redis_at}/0", "QUEUE_FALLBACK": "false",
        "DATABASE_URL": f"postgresql+psycopg://postgres@{pg_at}/bma",
        "DATA_DIR": str(data), "SECRET_KEY": svc.secret,
        "HEARTBEAT_INTERVAL": "0.5", "WORKER_LOST_AFTER": str(WORKER_LOST_AFTER),
        "TASK_MAX_ATTEMPTS": "8", "SHUTDOWN_GRACE": "2", "SSE_KEEPALIVE": "1",
        "LLM_PROVIDER": "openai", "LLM_BASE_URL": model_url, "LLM_MODEL": "fake-model",
        "LLM_API_KEY": "sk-multihost", "LLM_TIMEOUT": "30",
        "GENERATION_RATE_LIMIT": "1000000", "LOG_LEVEL": "INFO",
        # The "hosts" share one machine's cores: a worker host's lowered priority would
        # yield to the other hosts' processes, which on real machines it never meets.
        "WORKER_NICE": "0",
    })
    return env


# -- boards: event-stream clients that move to the other web host when theirs goes ------

@dataclass
class Seen:
    id: str
    kind: str
    task: dict | None
    at: float  # wall clock when received


@dataclass
class Board:
    name: str
    urls: list[str]
    token: str
    events: list[Seen] = field(default_factory=list)
    resyncs: int = 0
    connections: list[tuple[float, str]] = field(default_factory=list)
    last_id: str | None = None

    @property
    def current(self) -> str | None:
        return self.connections[-1][1] if self.connections else None

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        turn = 0
        while not stop.is_set():
            url = self.urls[turn % len(self.urls)]
            turn += 1
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                async with client.stream("GET", f"{url}/api/events", headers=headers) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        raise httpx.HTTPStatusError("refused", request=resp.request, response=resp)
                    self.connections.append((time.time(), url))
                    await self._read(resp, stop)
            except (httpx.HTTPError, OSError):
                pass
            if not stop.is_set():
                await asyncio.sleep(0.1)  # a browser's reconnect delay, not a synchronisation

    async def _read(self, resp: httpx.Response, stop: asyncio.Event) -> None:
        event_id = kind = None
        data: list[str] = []
        async for line in resp.aiter_lines():
            if stop.is_set():
                return
            if line == "":
                if data or kind:
                    self._take(event_id, kind or "message", "\n".join(data))
                event_id = kind = None
                data = []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    event_id = value
                elif name == "event":
                    kind = value
                elif name == "data":
                    data.append(value)

    def _take(self, event_id: str | None, kind: str, data: str) -> None:
        if event_id:
            self.last_id = event_id
        if kind == "resync":
            self.resyncs += 1
            return
        if kind == "task" and event_id:
            self.events.append(Seen(event_id, kind, json.loads(data).get("task"), time.time()))

    def final_states(self) -> dict[str, str]:
        states: dict[str, str] = {}
        for seen in self.events:
            states[seen.task["task_id"]] = seen.task["status"]
        return states


# -- the run -------------------------------------------------------------------------------

@dataclass
class Fault:
    name: str
    at: float
    host: str
    detected: float | None = None
    recovered: float | None = None
    note: str = ""


class Run:
    def __init__(self, args) -> None:
        self.args = args
        self.bed = Bed(PRODUCT_HOSTS + HARNESS_HOSTS)
        self.run_dir = Path(tempfile.mkdtemp(prefix="bma-multihost-"))
        self.svc = Services(self.bed, self.run_dir)
        self.faults: list[Fault] = []
        self.task_ids: list[str] = []
        self.boards: list[Board] = []

    # set-up
    def up(self) -> None:
        log(f"creating hosts in network namespaces (run folder {self.run_dir})")
        self.bed.up()
        # From here on this process lives on the clients' host: the other hosts are reached
        # over the bed's network, like from any machine of a deployment.
        self.bed.enter("clients")
        for name in PRODUCT_HOSTS + HARNESS_HOSTS:
            (self.run_dir / name).mkdir(exist_ok=True)
        hosts = self.bed.hosts
        self.redis_at = start_redis(self.svc)
        self.pg_at = start_postgres(self.svc)
        model_url = f"http://{hosts['model'].addr}:8080/v1"
        self.svc.spawn("model", "model", [PYTHON, "-m", "tests.multihost.model", hosts["model"].addr, "8080"],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
        self.env = {h: product_env(self.svc, h, self.redis_at, self.pg_at, model_url)
                    for h in ("web1", "web2", "worker1", "worker2", "worker3")}
        # worker3: a slow link (a delaying proxy in front of Redis and PostgreSQL) and a clock ahead
        slow = self.env["worker3"]
        if not self.args.no_slow:
            slow["REDIS_URL"] = "redis://127.0.0.1:6379/0"
            slow["DATABASE_URL"] = "postgresql+psycopg://postgres@127.0.0.1:5432/bma"
            self.svc.spawn("worker3", "worker3-proxy", [
                PYTHON, "-m", "tests.multihost.delay_proxy",
                f"127.0.0.1:6379={self.redis_at}", f"127.0.0.1:5432={self.pg_at}"],
                env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
            self.faults.append(Fault("slow link 200±50 ms", 0, "worker3"))
        if not self.args.no_skew:
            slow["PYTHONPATH"] = f"{Path(__file__).parent / 'skewed_clock'}:{ROOT}"
            slow["BMA_BED_CLOCK_SKEW"] = str(SKEW_SECONDS)
            self.faults.append(Fault(f"clock +{SKEW_SECONDS:g}s", 0, "worker3"))
        # accounts, made on web1's host before any server runs (in parallel: each is a process)
        accounts = [("manager@multihost.example", "manager")] + [
            (f"viewer{i}@multihost.example", "viewer") for i in range(4)]
        tokens = self._create_users("web1", accounts)
        self.manager, self.viewers = tokens[0], tokens[1:]
        self.web_urls = {}
        for web in ("web1", "web2"):
            addr = hosts[web].addr
            self.svc.spawn(web, web, [PYTHON, "-m", "webapp", "--host", addr, "--port", "5000"],
                           env=self.env[web], cwd=self.run_dir / web)
            self.web_urls[web] = f"http://{addr}:5000"
        for worker in ("worker1", "worker2", "worker3"):
            self.start_worker(worker)
        for web, url in self.web_urls.items():
            wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60, f"{web} to serve")
        wait_for(self._workers_alive, 60, "three worker hosts to report")
        log("hosts up: " + ", ".join(f"{n} {h.addr}" for n, h in hosts.items()))

    def start_worker(self, host: str) -> None:
        args = ["--workers", str(self.args.workers_per_host)]
        if host != "worker1":
            args.append("--no-periodic")
        self.svc.spawn(host, f"{host}-{int(time.time() * 1000)}", [PYTHON, str(ROOT / "huey_worker.py"), *args],
                       env=self.env[host], cwd=self.run_dir / host)

    def _create_users(self, host: str, accounts: list[tuple[str, str]]) -> list[str]:
        procs = [subprocess.Popen(self.bed.hosts[host].cmd(
            [PYTHON, "-m", "webapp", "create-user", "--email", email, "--role", role,
             "--password", "multihost password 1", "--token"]),
            env=self.env[host], cwd=self.run_dir / host, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True) for email, role in accounts]
        tokens = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise AssertionError(f"create-user failed: {err}")
            tokens.append(out.strip().splitlines()[-1])
        return tokens

    def _pg(self):
        host, port = self.pg_at.split(":")
        return psycopg.connect(f"host={host} port={port} user=postgres dbname=bma connect_timeout=3")

    def _workers_alive(self) -> bool:
        with self._pg() as conn:
            hosts = {row[0] for row in conn.execute(
                "SELECT hostname FROM workers WHERE stopped_at IS NULL")}
        return {"worker1", "worker2", "worker3"} <= hosts

    # the scenario
    async def scenario(self) -> None:
        urls = list(self.web_urls.values())
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        timeout = httpx.Timeout(10.0, read=15.0)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            stop = asyncio.Event()
            for i in range(self.args.boards):
                first = urls[i % 2]
                self.boards.append(Board(f"board{i}", [first, *[u for u in urls if u != first]],
                                         self.viewers[i % len(self.viewers)]))
            readers = [asyncio.create_task(b.run(client, stop)) for b in self.boards]
            await self._until(lambda: all(b.connections for b in self.boards), 30, "boards to connect")
            # A marker task: every board must see it before the run starts counting.
            self.marker = await self._post(client, urls, "/api/status-check", {}, "marker")
            await self._until(lambda: all(any(e.task["task_id"] == self.marker for e in b.events)
                                          for b in self.boards), 30, "the marker on every board")
            self.t0 = time.time()
            injector = asyncio.create_task(self._inject_faults())
            for i in range(self.args.tasks):
                body = {"platforms": PLATFORMS, "count_per_platform": 1, "async": True,
                        "book": {"title": f"SLOW tides {i}", "author": "Multihost",
                                 "link": "https://books.example.com/tides"}}
                self.task_ids.append(await self._post(client, urls, "/api/generate-posts", body, f"task-{i}"))
            log(f"queued {len(self.task_ids)} tasks in {time.time() - self.t0:.1f}s through both web hosts")
            await injector
            await self._until(self._all_terminal, self.args.deadline, "every task to end", interval=0.5,
                              blocking=True)
            self.t_done = time.time()
            log(f"every task ended {self.t_done - self.t0:.1f}s after the first was queued")
            finals = await asyncio.to_thread(self._final_states)
            await self._until(lambda: all(all(b.final_states().get(t) == s for t, s in finals.items())
                                          for b in self.boards), 30, "every board to show every final state",
                              fail=False)
            stop.set()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            self.canonical = await self._canonical_log(client, urls[-1])

    async def _post(self, client, urls, path, body, key) -> str:
        deadline = time.monotonic() + 60
        attempt = 0
        while time.monotonic() < deadline:
            url = urls[attempt % len(urls)]
            attempt += 1
            try:
                resp = await client.post(f"{url}{path}", json=body, headers={
                    "Authorization": f"Bearer {self.manager}", "Idempotency-Key": f"{self.bed.tag}-{key}"})
            except httpx.TransportError:
                continue
            if resp.status_code in (200, 202):
                return resp.json()["task_id"]
            if resp.status_code in (429, 503):
                await asyncio.sleep(0.2)  # back off as Retry-After asks
                continue
            raise AssertionError(f"POST {path} answered {resp.status_code}: {resp.text}")
        raise AssertionError(f"POST {path} never accepted")

    async def _until(self, predicate, timeout, what, interval=0.05, fail=True, blocking=False) -> bool:
        """Wait for `predicate` with a deadline; a blocking one (the database) runs in a thread."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await asyncio.to_thread(predicate) if blocking else predicate():
                return True
            await asyncio.sleep(interval)
        if fail:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        log(f"WARNING: timed out after {timeout}s waiting for {what}")
        return False

    async def _inject_faults(self) -> None:
        s = self.args.scale
        lost_after = WORKER_LOST_AFTER
        plan = [
            (1.5 * s, "cut", "worker1"),
            (1.5 * s + lost_after + 2.5, "heal", "worker1"),
            (3.0 * s, "kill", "worker2"),
            (3.0 * s + 1.5, "restart", "worker2"),
            (4.5 * s, "stop", "web1"),
        ]
        for at, action, host in sorted(plan):
            delay = self.t0 + at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the fault plan's schedule
            now = time.time()
            if action == "cut":
                self.bed.cut(host)
                self.faults.append(Fault("network cut", now, host))
                log(f"cut {host} off the network")
            elif action == "heal":
                self.bed.heal(host)
                self._fault("network cut", host).note = f"healed after {now - self._fault('network cut', host).at:.1f}s"
                log(f"healed {host}")
            elif action == "kill":
                count = self.bed.kill_host(host)
                self.faults.append(Fault("SIGKILL", now, host, note=f"{count} processes"))
                log(f"SIGKILLed {count} processes on {host}")
            elif action == "restart":
                self.start_worker(host)
                log(f"started {host}'s worker again")
            elif action == "stop":
                self.web_stop_boards = [b.name for b in self.boards if b.current == self.web_urls[host]]
                self.svc.procs[host].send_signal(signal.SIGTERM)
                self.faults.append(Fault("web host stopped", now, host))
                log(f"stopped {host} (SIGTERM); {len(self.web_stop_boards)} boards were on it")

    def _fault(self, name: str, host: str) -> Fault:
        return next(f for f in self.faults if f.name == name and f.host == host)

    def _all_terminal(self) -> bool:
        with self._pg() as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM tasks WHERE id = ANY(%s) AND status NOT IN "
                "('SUCCESS', 'FAILURE', 'REVOKED')", (self.task_ids,)).fetchone()[0]
        return waiting == 0

    def _final_states(self) -> dict[str, str]:
        with self._pg() as conn:
            return dict(conn.execute("SELECT id, status FROM tasks WHERE id = ANY(%s)",
                                     ([*self.task_ids, self.marker],)).fetchall())

    async def _canonical_log(self, client, url) -> list[str]:
        """Every event after the marker's first, as the product replays it."""
        first = next(e.id for e in self.boards[0].events if e.task["task_id"] == self.marker)
        wanted = {e.id for b in self.boards for e in b.events}
        reader = Board("canonical", [url], self.manager, last_id=first)
        stop = asyncio.Event()
        task = asyncio.create_task(reader.run(client, stop))
        await self._until(lambda: wanted <= {e.id for e in reader.events} | {first}, 30,
                          "the replayed log to cover what the boards saw", fail=False)
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return [first] + [e.id for e in reader.events]

    # the verdict
    def verdict(self) -> bool:
        finals = self._final_states()
        with self._pg() as conn:
            posts = dict(conn.execute("SELECT batch_id, count(*) FROM posts WHERE batch_id = ANY(%s) "
                                      "GROUP BY batch_id", (self.task_ids,)).fetchall())
            successes = dict(conn.execute(
                "SELECT task_id, count(*) FROM task_history WHERE task_id = ANY(%s) AND status = 'SUCCESS' "
                "GROUP BY task_id", (self.task_ids,)).fetchall())
            extra = conn.execute("SELECT count(*) FROM tasks WHERE type = 'content_generation' "
                                 "AND NOT (id = ANY(%s))", (self.task_ids,)).fetchone()[0]
        lost = [t for t in self.task_ids if finals.get(t) != "SUCCESS"]
        duplicated = ([t for t in self.task_ids if posts.get(t, 0) != len(PLATFORMS)]
                      + [t for t, n in successes.items() if n > 1])
        canonical = self.canonical
        missed = dup_events = stale = 0
        for board in self.boards:
            ids = [e.id for e in board.events]
            counts = collections.Counter(ids)
            dup_events += sum(n - 1 for n in counts.values() if n > 1)
            missed += sum(1 for eid in canonical if eid not in counts)
            states = board.final_states()
            stale += sum(1 for t, s in finals.items() if states.get(t) != s)
        false_lost = self._false_lost()
        self._print_figures(finals, lost, duplicated, missed, dup_events, stale, false_lost, extra)
        faults = len(self.faults)
        self.summary = {"tasks": len(self.task_ids), "lost": len(lost), "duplicated": len(duplicated),
                        "missed_events": missed, "duplicated_deliveries": dup_events, "stale": stale,
                        "falsely_lost": false_lost, "unasked_tasks": extra, "faults": faults,
                        "resyncs": sum(b.resyncs for b in self.boards)}
        print(f"multihost: {len(self.task_ids)} tasks, {len(PRODUCT_HOSTS)} hosts, {faults} faults: "
              f"lost {len(lost)}, duplicated {len(duplicated)}, missed events {missed}", flush=True)
        return not (lost or duplicated or missed or dup_events or stale or false_lost or extra)

    def _false_lost(self) -> int:
        """Runs declared lost on a worker host that was neither cut off nor killed at the time."""
        board = self.boards[0]
        faulted = {f.host: f.at for f in self.faults if f.name in ("network cut", "SIGKILL")}
        running: dict[str, str] = {}
        false = []
        for e in board.events:
            task = e.task
            if task["status"] == "STARTED" and task.get("worker"):
                running[task["task_id"]] = task["worker"]
            elif task["status"] == "RETRY" and (task.get("error") or {}).get("type") == "lost":
                worker = running.get(task["task_id"], "?")
                host = worker.split(":")[0]
                if host not in faulted or e.at < faulted[host]:
                    false.append(f"{task['task_id']} on {worker} at +{e.at - self.t0:.1f}s: "
                                 f"{task['error'].get('message')}")
        for line in false:
            print(f"  falsely lost: {line}")
        return len(false)

    def _recovery(self) -> None:
        """When each fault was noticed and its work finished elsewhere, from board0's live view."""
        board = self.boards[0]
        for fault in self.faults:
            if fault.name in ("network cut", "SIGKILL"):
                running = {}
                for e in board.events:
                    if e.at >= fault.at:
                        break
                    t = e.task
                    if t["status"] == "STARTED" and (t.get("worker") or "").split(":")[0] == fault.host:
                        running[t["task_id"]] = True
                    elif t["task_id"] in running and t["status"] != "STARTED":
                        running.pop(t["task_id"])
                later = [e for e in board.events if e.at >= fault.at and e.task["task_id"] in running]
                moved = [e.at for e in later if e.task["status"] == "RETRY"]
                done = {e.task["task_id"]: e.at for e in later if e.task["status"] == "SUCCESS"}
                fault.note += f"{'; ' if fault.note else ''}{len(running)} running tasks"
                if moved:
                    fault.detected = min(moved) - fault.at
                if running and len(done) == len(running):
                    fault.recovered = max(done.values()) - fault.at
            elif fault.name == "web host stopped":
                moved = []
                for board in self.boards:
                    if board.name in getattr(self, "web_stop_boards", []):
                        after = [t for t, url in board.connections if t >= fault.at]
                        if after:
                            moved.append(after[0] - fault.at)
                if moved:
                    fault.detected = fault.recovered = max(moved)
                fault.note = f"{len(moved)} boards reconnected to web2"

    def _print_figures(self, finals, lost, duplicated, missed, dup_events, stale, false_lost, extra) -> None:
        self._recovery()
        by_status = collections.Counter(finals[t] for t in self.task_ids)
        print("\n== multi-host run ==")
        print(f"hosts: {', '.join(f'{n} {h.addr}' for n, h in self.bed.hosts.items())}")
        print(f"tasks: {len(self.task_ids)} ({dict(by_status)}), all ended in {self.t_done - self.t0:.1f}s; "
              f"tasks nobody asked for: {extra}")
        print("faults:")
        for f in self.faults:
            det = f"{f.detected:.1f}s" if f.detected is not None else "-"
            rec = f"{f.recovered:.1f}s" if f.recovered is not None else "-"
            print(f"  {f.name:<22} {f.host:<8} detected {det:>6}  recovered {rec:>6}  {f.note}")
        fresh = []
        for board in self.boards:
            for e in board.events:
                worker = (e.task.get("worker") or "").split(":")[0]
                if worker == "worker3" or not e.task.get("updated_at"):
                    continue  # worker3's clock is skewed on purpose
                at = dt.datetime.fromisoformat(e.task["updated_at"].replace("Z", "+00:00")).timestamp()
                fresh.append((e.at - at) * 1000)
        if fresh:
            fresh.sort()
            p50 = statistics.median(fresh)
            p99 = fresh[min(len(fresh) - 1, int(len(fresh) * 0.99))]
            print(f"event freshness across hosts: p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(fresh)} deliveries")
        print(f"boards: {len(self.boards)} on two web hosts, {sum(len(b.events) for b in self.boards)} events "
              f"received, resyncs {sum(b.resyncs for b in self.boards)}, duplicated deliveries {dup_events}, "
              f"missed {missed}, stale final states {stale}")
        print(f"falsely declared lost: {false_lost}")
        if lost:
            print(f"lost: {lost[:10]}")
        if duplicated:
            print(f"duplicated: {duplicated[:10]}")

    def down(self) -> None:
        self.bed.down()
        if self.svc.pg_base:
            shutil.rmtree(self.svc.pg_base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.multihost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--boards", type=int, default=8, help="event-stream clients, half on each web host")
    parser.add_argument("--workers-per-host", type=int, default=2)
    parser.add_argument("--scale", type=float, default=2.0, help="stretches the fault plan in time")
    parser.add_argument("--deadline", type=float, default=300, help="seconds for every task to end")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs) afterwards")
    parser.add_argument("--no-slow", action="store_true", help="diagnosis: no slow link for worker3")
    parser.add_argument("--no-skew", action="store_true", help="diagnosis: no clock skew for worker3")
    parser.add_argument("--summary", type=Path, help="also write the verdict's figures as JSON here")
    args = parser.parse_args(argv)
    try:
        check_can_run()
    except BedUnavailable as exc:
        print(f"multihost: cannot run here: {exc}", file=sys.stderr)
        return 2
    run = Run(args)
    ok = False
    try:
        run.up()
        asyncio.run(run.scenario())
        ok = run.verdict()
        if args.summary:
            args.summary.write_text(json.dumps(run.summary))
    except Exception as exc:
        traceback.print_exc()
        print(f"multihost: FAILED: {exc}", flush=True)
        for name in sorted(run.svc.procs):
            tail = run.svc.log_tail(name, 15)
            if tail:
                print(f"--- {name} (last lines) ---\n{tail}")
    finally:
        run.down()
        if ok and not args.keep:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        else:
            print(f"logs kept in {run.run_dir}")
    return 0 if ok else 1
