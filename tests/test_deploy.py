"""The production layout in deploy/: unit files that systemd accepts, health checks that tell."""
from __future__ import annotations

import os
import subprocess

from tests.support import PYTHON, ROOT, require

HEALTHCHECK = [PYTHON, str(ROOT / "scripts" / "healthcheck.py")]


def test_systemd_units_are_valid(tmp_path):
    analyze = require("systemd-analyze", "the unit files are checked by systemd's own verifier")
    for unit in (ROOT / "deploy" / "systemd").glob("*.service"):
        # Point the units at this checkout, as an installation to /opt/bma would be.
        text = unit.read_text().replace("/opt/bma/.venv/bin/python", PYTHON).replace("/opt/bma", str(ROOT))
        text = text.replace("User=bma", "User=root").replace("Group=bma", "Group=root")
        target = tmp_path / unit.name.replace("@.service", "@5000.service")
        target.write_text(text)
        done = subprocess.run([analyze, "verify", str(target)], capture_output=True, text=True,
                              env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
        problems = [line for line in (done.stdout + done.stderr).splitlines()
                    if target.name in line or unit.name in line]
        assert not problems, problems


def _check(what: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HEALTHCHECK, what, *args], env=env, capture_output=True, text=True, timeout=60)


def test_health_checks_tell_each_part_of_a_running_deployment(fresh_stack):
    stack = fresh_stack("postgres").start()
    env = stack.env
    assert _check("web", env, stack.base_url).returncode == 0
    assert _check("redis", env).returncode == 0
    assert _check("database", env).returncode == 0
    worker = _check("worker", env)
    assert worker.returncode == 0, worker.stdout
    assert "heartbeating" in worker.stdout

    for proc in stack.workers:
        proc.stop()
    stopped = _check("worker", env)
    assert stopped.returncode == 1 and stopped.stdout.startswith("unhealthy:"), stopped.stdout
    stack.web.stop()
    assert _check("web", env, stack.base_url).returncode == 1


def test_health_checks_fail_clearly_when_their_server_is_gone(tmp_path):
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0",
           "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none", "DATA_DIR": str(tmp_path)}
    for what in ("redis", "database"):
        done = _check(what, env)
        assert done.returncode == 1 and done.stdout.startswith("unhealthy:"), done.stdout
