"""Health checks for each part of a deployment, for a load balancer, systemd or a monitor:

    .venv/bin/python scripts/healthcheck.py web [URL]   # the web process answers (default http://127.0.0.1:5000)
    .venv/bin/python scripts/healthcheck.py worker      # this machine's workers are heartbeating
    .venv/bin/python scripts/healthcheck.py redis       # REDIS_URL answers
    .venv/bin/python scripts/healthcheck.py database    # DATABASE_URL answers

Reads the same settings as the product (environment or .env). Exits 0 when healthy, else 1
with one line saying what is wrong.
"""
from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def check_web(url: str) -> str:
    import httpx
    response = httpx.get(f"{url.rstrip('/')}/healthz", timeout=3)
    if response.status_code != 200:
        raise RuntimeError(f"{url}/healthz answered {response.status_code}")
    return f"web at {url} answers"


def check_worker() -> str:
    import redis
    from sqlalchemy import create_engine

    from jobs.clock import Clock
    from jobs.settings import load_settings
    from jobs.workers import list_workers
    settings = load_settings()
    engine = create_engine(settings.sql_url)
    # Heartbeats are stamped with Redis's clock (jobs/clock.py): read them against it.
    client = (redis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
              if settings.redis_url else None)
    try:
        mine = [w for w in list_workers(engine, settings.worker_lost_after, now=Clock(client).now())
                if w["host"] == socket.gethostname()]
    finally:
        engine.dispose()
        if client is not None:
            client.close()
    alive = [w for w in mine if w["state"] in ("running", "stopping")]
    if not alive:
        states = ", ".join(f"{w['id']} {w['state']}" for w in mine) or "none seen"
        raise RuntimeError(f"no worker of {socket.gethostname()} is heartbeating ({states})")
    return f"{len(alive)} worker process(es) of {socket.gethostname()} heartbeating"


def check_redis() -> str:
    import redis

    from jobs.settings import load_settings
    url = load_settings().redis_url
    if not url:
        raise RuntimeError("REDIS_URL is not set (embedded mode has no Redis to check)")
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    finally:
        client.close()
    return "Redis answers"


def check_database() -> str:
    from sqlalchemy import create_engine, text

    from jobs.settings import load_settings
    engine = create_engine(load_settings().sql_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    return "database answers"


def main(argv: list[str]) -> int:
    checks = {"web": lambda: check_web(argv[1] if len(argv) > 1 else "http://127.0.0.1:5000"),
              "worker": check_worker, "redis": check_redis, "database": check_database}
    if not argv or argv[0] not in checks:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(f"ok: {checks[argv[0]]()}")
        return 0
    except Exception as exc:  # any failure is the answer: unhealthy, and why
        print(f"unhealthy: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
