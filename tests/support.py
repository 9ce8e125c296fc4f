"""Helpers for tests that run the real product: processes, ports, waiting with deadlines."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
T = TypeVar("T")

# For a test whose SLOW or STALL generation task must end the way the test says (succeed, be
# handed back, stay held): a content-generation timeout no test outlives (pytest.ini: timeout =
# 180). The suite's 6 s (tests/conftest.py) is for tests of timeouts, and a SLOW task spends
# most of it waiting on the model on purpose (SLOW_SECONDS an answer, 3-9 answers here); a
# worker process's first task that writes posts also imports the writers inside its timeout
# (0.5 s of CPU; 3 s measured on a loaded machine). Loaded runs saw the attempt after a
# recovery fail with "Operation timeout after 6s".
TIMEOUT_BEYOND_THE_TEST = {"TIMEOUT_CONTENT_GENERATION": "180"}


def require(binary: str, why: str) -> str:
    """The path of a system program the test needs; missing means skip, or fail under CI."""
    path = shutil.which(binary)
    if path:
        return path
    message = f"{binary} is not installed: {why}. `make test` installs it with apt-get where it can."
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_all(procs: "list[Proc | None]", sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signal every process first, then wait for each: their shutdowns overlap instead of
    adding up (each waits once for its own grace, as with `Proc.stop`)."""
    procs = [p for p in procs if p is not None]
    for proc in procs:
        proc.signal(sig)
    for proc in procs:
        proc.wait(timeout)


def wait_until(predicate: Callable[[], T], timeout: float, message: str = "condition",
               interval: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (httpx.TransportError, OSError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_error})" if last_error else ""))


class Proc:
    """A child process whose output goes to a log file, shown when a test fails."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(cmd, cwd=log_dir, env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        self.signal(sig)
        return self.wait(timeout)

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout: float = 15) -> int | None:
        """Wait for a signalled process to end; kill its group past `timeout`."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        self._log.close()
        return self.popen.returncode

    def kill_group(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(5)
        self._log.close()


class RedisServer:
    def __init__(self, log_dir: Path) -> None:
        binary = require("redis-server", "Redis-mode tests run a real Redis")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self._binary = binary
        self.proc: Proc | None = None
        self._databases = 0
        self.start()

    def new_database(self) -> str:
        """The URL of a database number no other stack or test of this run uses."""
        self._databases += 1
        return f"redis://127.0.0.1:{self.port}/{self._databases}"

    def start(self) -> None:
        self.proc = Proc(f"redis-{self.port}", [
            self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            # One database per test stack: a run makes more than Redis's default 16.
            "--appendonly", "no", "--databases", "1000", "--dir", str(self.log_dir)],
            dict(os.environ), self.log_dir)
        import redis
        client = redis.Redis(port=self.port)
        wait_until(lambda: _ping(client), 10, "redis-server to answer PING")
        client.close()

    def stop(self) -> None:
        if self.proc:
            self.proc.stop(signal.SIGKILL)


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free port (as the postgres user when run as root)."""

    def __init__(self) -> None:
        import tempfile
        bindir = _postgres_bindir()
        self.port = free_port()
        # Its own folder under /tmp: pytest's folders are private to root, PostgreSQL's user
        # could not reach them.
        base = self.base = Path(tempfile.mkdtemp(prefix="bma-postgres-"))
        self.data = base / "pgdata"
        self.data.mkdir(parents=True)
        self._as = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd
            account = pwd.getpwnam("postgres")
            os.chown(base, account.pw_uid, account.pw_gid)
            os.chown(self.data, account.pw_uid, account.pw_gid)
            self._as = [require("runuser", "to run PostgreSQL as its own user"), "-u", "postgres", "--"]
        subprocess.run([*self._as, str(bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True, timeout=120)
        self._bindir = bindir
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def start(self) -> None:
        """Start the cluster (again, after `halt`: its data kept)."""
        self.proc = Proc(f"postgres-{self.port}", [*self._as, str(self._bindir / "postgres"),
                         "-D", str(self.data), "-p", str(self.port), "-k", str(self.data),
                         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                         dict(os.environ), self.base)
        wait_until(self._ready, 30, "PostgreSQL to accept connections")

    def _ready(self) -> bool:
        import psycopg
        try:
            psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres").close()
            return True
        except psycopg.OperationalError:
            return False

    def database(self, name: str) -> str:
        import psycopg
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def halt(self) -> None:
        """Stop the server (fast shutdown: its connections are cut), keeping its data."""
        # To the whole group: runuser does not pass SIGINT on, and the stop then waited out
        # Proc.wait's 15 s and killed the cluster (at the end of every run that used it).
        if self.proc.alive():
            os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait()

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.base, ignore_errors=True)


def _postgres_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    return Path(require("initdb", "PostgreSQL-mode tests run a real PostgreSQL")).parent


def _ping(client) -> bool:
    import redis
    try:
        return client.ping()
    except redis.RedisError:
        return False


class Stack:
    """One running product: a web server, and in Redis mode separate worker processes."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str], *, workers: list[list[str]] = ()):
        self.name = name
        self.dir = tmp
        self.data_dir = tmp / "data"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Run from the stack's own folder so a developer's .env does not leak in.
        self.env = {**os.environ, "DATA_DIR": str(self.data_dir), "LOG_LEVEL": "INFO",
                    "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **env}
        if "REDIS_URL" not in env:
            self.env.pop("REDIS_URL", None)
        self.worker_args = list(workers)
        self.workers: list[Proc] = []
        self.web: Proc | None = None
        self.client = httpx.Client(base_url=self.base_url, timeout=10)

    def create_user(self, email: str, role: str, password: str = "correct horse battery") -> str:
        """Create an account with the command line; returns its API token."""
        # How long the command takes is the machine's load, not the product's: about 1 s of
        # CPU, most of it importing the database layer and hashing the password. A loaded run saw
        # it print its token and still be exiting at 60 s. So the deadline is the test's own
        # (pytest.ini: timeout = 180), less a margin that names a hung command with its output.
        result = subprocess.run(
            [PYTHON, "-m", "webapp", "create-user", "--email", email, "--role", role,
             "--password", password, "--token"],
            cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=150)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def add_user(self, email: str, role: str, password: str) -> dict:
        """Create an account over the API as the manager (quicker than the command line)."""
        made = self.client.post("/api/users", json={"email": email, "role": role,
                                                    "password": password})
        assert made.status_code == 201, made.text
        return made.json()

    def client_for(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, timeout=10, headers=headers)

    def start(self) -> "Stack":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.token = self.create_user("manager@example.com", "manager")
        self.client.headers["Authorization"] = f"Bearer {self.token}"
        for i, args in enumerate(self.worker_args):
            self.start_worker(args, f"{self.name}-worker{i}")
        self.start_web()
        for user in (None, "user123"):  # the seed's requests name no book: use theirs
            self.add_book(user)
        return self

    def add_book(self, user_id: str | None, **fields) -> dict:
        body = {"title": "The Lighthouse Keeper's Daughter",
                "author": "Mara Ellison", "genre": "literary fiction",
                "blurb": "On a storm-battered island, Nell keeps the light her father can no "
                         "longer tend. A stranger washes ashore with a letter for her mother.",
                "keywords": ["lighthouse", "family secrets"],
                "link": "https://books.example.com/lighthouse", **fields}
        if user_id is not None:
            body["user_id"] = user_id
        response = self.client.post("/api/books", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def start_web(self) -> None:
        self.web = Proc(f"{self.name}-web", [PYTHON, "-m", "webapp", "--port", str(self.port)],
                        self.env, self.dir)
        wait_until(self._ready, 30, f"{self.name} web server on port {self.port}")

    def start_worker(self, args: list[str], name: str) -> Proc:
        proc = Proc(name, [PYTHON, str(ROOT / "huey_worker.py"), *args], self.env, self.dir)
        self.workers.append(proc)
        return proc

    def _ready(self) -> bool:
        if self.web is not None and not self.web.alive():
            raise AssertionError(f"web server exited:\n{self.web.log()[-3000:]}")
        return self.client.get("/healthz").status_code in (200, 503)

    def stop(self) -> None:
        self.client.close()
        stop_all([self.web, *self.workers])

    # -- API helpers --
    def task(self, task_id: str) -> dict:
        response = self.client.get(f"/api/task-status/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, task_id: str, statuses: set[str] | str, timeout: float = 20) -> dict:
        wanted = {statuses} if isinstance(statuses, str) else statuses
        return wait_until(lambda: (t := self.task(task_id))["status"] in wanted and t,
                          timeout, f"task {task_id} to reach {sorted(wanted)}")

    def queue(self, **body) -> str:
        body.setdefault("async", True)
        response = self.client.post("/api/generate-posts", json=body)
        assert response.status_code == 202, response.text
        return response.json()["task_id"]

    def _live_workers(self) -> list[dict]:
        workers = self.client.get("/api/health").json()["task_queue_status"]["workers"]
        return [w for w in workers if w["state"] == "alive"]

    @property
    def mode(self) -> str:
        """The queue mode this stack runs in."""
        return "embedded" if self.name == "embedded" else "redis"

    def capacity(self) -> int:
        """How many tasks the live workers can run at once."""
        return sum(w["concurrency"] for w in self._live_workers())

    def running(self) -> set[str]:
        """The ids of the tasks the live workers report running."""
        return {r["task_id"] for w in self._live_workers() for r in w["running"]}

    def events(self, last_event_id: str | None = None, token: str | None = None) -> "SSEReader":
        return SSEReader(self.base_url + "/api/events", last_event_id, token or self.token)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-4000:]}" for p in [self.web, *self.workers] if p)


def sse_messages(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """The messages of an event stream, each as its fields (those with data); a comment line
    (a keep-alive) comes as an empty dict."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {}
        else:
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value


class SSEReader:
    """Reads a server-sent event stream in a thread; events are (id, event, data) tuples."""

    def __init__(self, url: str, last_event_id: str | None = None, token: str | None = None) -> None:
        import json
        import threading
        self.events: list[tuple[str | None, str, dict]] = []
        self.comments = 0
        self.status: int | None = None
        self._json = json
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=30))
        self._stop = False
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                for fields in sse_messages(response.iter_lines()):
                    if self._stop:
                        return
                    if not fields:
                        self.comments += 1
                        continue
                    self.events.append((fields.get("id"), fields.get("event", "message"),
                                        self._json.loads(fields["data"])))
        except httpx.HTTPError:
            pass
        finally:
            self.done.set()

    def wait_open(self, timeout: float = 10) -> "SSEReader":
        """Wait until the stream is open (its first comment or event came): what is published
        before that is not sent to it."""
        wait_until(lambda: self.comments or self.events, timeout, "the event stream to open")
        return self

    def task_events(self, task_id: str) -> list[tuple[str, dict]]:
        return [(i, d["task"]) for i, e, d in list(self.events)
                if e == "task" and d["task"]["task_id"] == task_id]

    def close(self) -> None:
        self._stop = True
        self._client.close()
