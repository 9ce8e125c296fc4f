from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from jobs import task_stats
from jobs.db import make_engine
from tests.fake_llm import FakeLLM
from tests.support import PostgresServer, RedisServer, Stack, wait_until

# Short liveness and timeout windows keep failure tests quick; the mechanisms are the same.
STACK_ENV = {
    "HEARTBEAT_INTERVAL": "0.5",
    "WORKER_LOST_AFTER": "3",
    "TIMEOUT_CONTENT_GENERATION": "6",
    "SHUTDOWN_GRACE": "2",
    "SSE_KEEPALIVE": "1",
    "WORKER_CONCURRENCY": "4",
    "LLM_PROVIDER": "openai",
    "LLM_MODEL": "fake-model",
    "LLM_API_KEY": "sk-test-key-never-logged",
    "LLM_TIMEOUT": "60",
    "GENERATION_RATE_LIMIT": "10000",
    # A pause is seen by the next claim: tests that pause a type and queue one expect it to
    # wait, and on a warm stack a reading up to 1 s old (the default) let it run.
    "PAUSE_CHECK_INTERVAL": "0",
    # Many stacks share the test machine: lowering one stack's workers below every other
    # stack's web and test processes would only slow unrelated tests' tasks. The default is
    # tested on its own (tests/test_worker_priority.py).
    "WORKER_NICE": "0",
    # The tests' webhook receivers listen on this machine; refusing private addresses, the
    # default, is tested on its own (tests/test_webhooks.py).
    "WEBHOOK_PRIVATE_ADDRESSES": "true",
}


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def redis_server(artifacts):
    server = RedisServer(artifacts)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    """A redis-server for one test module alone, for tests that read the server's command
    statistics: on the shared one, other tests' consumers add calls between a reset and a read."""
    server = RedisServer(tmp_path_factory.mktemp("private-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_llm():
    llm = FakeLLM()
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    """An engine on a database of the test's own: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        url = request.getfixturevalue("postgres_server").database(f"t_{secrets.token_hex(6)}")
    engine = make_engine(url)
    task_stats._forget()  # settled steps are remembered per process
    yield engine
    engine.dispose()


def _make_stack(kind: str, tmp: Path, llm: FakeLLM, request) -> Stack:
    """embedded: SQLite and in-process workers; redis: Redis and a huey_worker.py process;
    postgres: the scaled-out set-up, Redis and PostgreSQL with a worker process."""
    env = {**STACK_ENV, "LLM_BASE_URL": llm.url}
    if kind == "postgres":
        pg = request.getfixturevalue("postgres_server")
        env["DATABASE_URL"] = pg.database(f"bma_{len(getattr(pg, 'made', []))}")
        pg.made = [*getattr(pg, "made", []), env["DATABASE_URL"]]
    if kind in ("redis", "postgres"):
        env["REDIS_URL"] = request.getfixturevalue("redis_server").new_database()
        return Stack(kind, tmp, env, workers=[["--workers", "3", "--worker-type", "process"]])
    return Stack(kind, tmp, env)


@pytest.fixture(scope="session", params=["embedded", "redis", "postgres"])
def stack(request, tmp_path_factory, fake_llm):
    """The product running in each queue mode, shared by the contract suite."""
    s = _make_stack(request.param, tmp_path_factory.mktemp(request.param), fake_llm, request)
    try:
        s.start()
        yield s
    finally:
        s.stop()  # also when start-up failed half-way: no server outlives the run


@pytest.fixture
def fresh_stack(request, tmp_path, fake_llm):
    """A stack of its own, for tests that stop or kill parts of it."""
    stacks = []

    def make(kind: str, **env) -> Stack:
        s = _make_stack(kind, tmp_path / f"{kind}{len(stacks)}", fake_llm, request)
        s.dir.mkdir(parents=True, exist_ok=True)
        s.env.update(env)
        stacks.append(s)
        return s

    yield make
    for s in stacks:
        s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call":
        for name in ("stack",):
            s = item.funcargs.get(name)
            if s is not None:
                report.sections.append((f"{s.name} logs", s.logs()))


CHAOS_FIGURES = "chaos figures"  # a report's user property: one chaos test's figures
_chaos_rows: list[dict] = []


def pytest_runtest_logreport(report):
    if report.when == "teardown":  # by then the report carries all the test recorded
        _chaos_rows.extend(row for key, row in report.user_properties if key == CHAOS_FIGURES)


def pytest_terminal_summary(terminalreporter):
    if not _chaos_rows:
        return
    long = any(row["long"] for row in _chaos_rows)
    terminalreporter.section(f"chaos figures ({'long' if long else 'short'} run)")
    for row in _chaos_rows:
        values = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("test", "long"))
        terminalreporter.write_line(f"{row['test']}: {values}")


def pytest_configure(config):
    # The servers, workers and commands the tests start (hundreds of processes) load the
    # product's modules from bytecode compiled once (in the ignored `__pycache__` folders)
    # instead of compiling them again each time: 0.3-0.4 s of CPU per web server start.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.fixture(autouse=True)
def _settle_shared_stack(request):
    """Leave the shared stack idle for the next test: stop what a test left running and
    answer the model calls it left hanging, so no worker stays occupied."""
    yield
    if "stack" not in request.fixturenames:
        return
    s, llm = request.getfixturevalue("stack"), request.getfixturevalue("fake_llm")
    active = s.client.get("/api/tasks/active").json()["active_tasks"]
    for task in active:
        s.client.post(f"/api/tasks/revoke/{task['task_id']}", json={"terminate": True})

    def idle() -> bool:
        llm.release_stalled()
        return not s.running()
    wait_until(idle, 30, "the shared stack's workers to be idle", interval=0.2)
