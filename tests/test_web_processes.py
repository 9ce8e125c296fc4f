"""`python -m webapp --workers N`: N processes on one port, each following the event stream."""
from __future__ import annotations

import os
import subprocess
import time

import httpx

from tests.support import PYTHON, ROOT, Proc, SSEReader, free_port, wait_until


def test_several_web_processes_share_the_port_and_each_streams_every_event(
        redis_server, tmp_path):
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.new_database(), "DATA_DIR": str(tmp_path),
           "PYTHONPATH": str(ROOT), "SSE_KEEPALIVE": "1", "GENERATION_RATE_LIMIT": "1000"}
    token = subprocess.run(
        [PYTHON, "-m", "webapp", "create-user", "--email", "m@example.com", "--role", "manager",
         "--token"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.strip().splitlines()[-1]
    web = Proc("web", [PYTHON, "-m", "webapp", "--port", str(port), "--workers", "2"], env,
               tmp_path)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    readers: list[SSEReader] = []
    try:
        wait_until(lambda: client.get("/healthz").status_code == 200, 30, "the web processes")
        # Both serving (one answering is not enough): a process still starting up when the
        # stop below comes has no signal handler yet, dies of SIGTERM and fails the stop.
        wait_until(lambda: web.log().count("serving with the redis queue") == 2, 30,
                   "both web processes to serve")
        readers = [SSEReader(base + "/api/events", token=token) for _ in range(12)]
        wait_until(lambda: all(r.status == 200 for r in readers), 10, "the streams to open")
        children = subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True, text=True)
        assert len(children.stdout.split()) == 2

        response = client.post("/api/generate-posts", json={
            "platforms": ["twitter"], "count_per_platform": 1, "async": True,
            "book": {"title": "Tides", "author": "A. Writer", "genre": "memoir",
                     "blurb": "A year on a small island.", "link": "https://example.com/t"}})
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        wait_until(lambda: all(r.task_events(task_id) for r in readers), 10,
                   "the task's event on every stream, whichever process serves it")
    finally:
        client.close()
        started = time.monotonic()
        code = web.stop()  # with the streams still open: they end themselves at shutdown
        for reader in readers:
            reader.close()
    assert code == 0, web.log()[-3000:]
    assert time.monotonic() - started < 10


def test_a_stop_while_the_processes_start_is_a_clean_stop(redis_server, tmp_path):
    """A supervisor that stops the server at once (a deploy rolled back) must see exit 0: the
    children still importing have no handler yet and die of the signal itself."""
    env = {**os.environ, "REDIS_URL": redis_server.new_database(), "DATA_DIR": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    web = Proc("web", [PYTHON, "-m", "webapp", "--port", str(free_port()), "--workers", "2"],
               env, tmp_path)
    wait_until(lambda: "(2 processes)" in web.log(), 30, "the children to be started")
    assert web.stop() == 0, web.log()[-3000:]
