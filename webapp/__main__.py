"""`python -m webapp [serve] [--host H] [--port P] [--workers N]` serves the dashboard and API
(with N processes sharing the port, Redis mode only);
`python -m webapp create-user --email E --role manager|author|viewer [--password P] [--token]`
creates an account (`--token` prints a new API token for it on the last line);
`python -m webapp inspect active|stats|workers|schedules|task <id> [--json]` shows what the
API shows, read from the database and the queue directly (no server needed)."""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import socket
import subprocess
import sys
import time

import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config

from jobs.settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapp", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve", help="serve the app (the default)")
    for p in (parser, serve_cmd):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=5000)
        p.add_argument("--workers", type=int, default=1,
                       help="web processes sharing the port (Redis mode; default 1)")
        p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    user_cmd = sub.add_parser("create-user", help="create an account")
    user_cmd.add_argument("--email", required=True)
    user_cmd.add_argument("--role", required=True, choices=("manager", "author", "viewer"))
    user_cmd.add_argument("--password", help="for signing in to the dashboard (12+ characters)")
    user_cmd.add_argument("--token", action="store_true", help="also print a new API token")
    inspect_cmd = sub.add_parser("inspect", help="show tasks, workers, schedules without a server")
    inspect_cmd.add_argument("what", choices=("active", "stats", "workers", "schedules", "task"))
    inspect_cmd.add_argument("task_id", nargs="?", help="for `inspect task`: the task's id")
    inspect_cmd.add_argument("--json", action="store_true", help="the API's JSON instead of tables")
    args = parser.parse_args(argv)
    if args.command == "inspect" and (args.what == "task") != (args.task_id is not None):
        inspect_cmd.error("`inspect task` takes a task id; the others take none")
    try:
        if args.command == "inspect":
            from webapp.inspect import run
            return run(args.what, args.task_id, args.json)
        if args.command == "create-user":
            return create_user(args.email, args.role, args.password, args.token)
        if args.workers > 1:
            return run_processes(args.host, args.port, args.workers)
        return run_server(args.host, args.port, reuse_port=args.reuse_port)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def create_user(email: str, role: str, password: str | None, token: bool) -> int:
    from jobs import users
    from jobs.audit import record
    from jobs.db import make_engine
    from jobs.settings import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = make_engine(settings.sql_url)
    try:
        user = users.create_user(db, email, role, password)
    except users.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record(db, "command line", "user.create", user.email, {"role": role})
    print(f"created {user.role} {user.email} (id {user.id})")
    if token:
        secret, _ = users.create_token(db, user.id, "command line")
        record(db, "command line", "token.create", user.email, {})
        print(secret)
    db.dispose()
    return 0


def run_processes(host: str, port: int, workers: int) -> int:
    """Several web processes on one port (SO_REUSEPORT: the kernel spreads connections). Each
    reads the event stream itself, so streams scale with cores. Embedded mode keeps its queue
    and events inside one process, so it cannot be split."""
    from jobs.settings import load_settings

    if not load_settings().redis_url:
        raise SettingsError("--workers needs REDIS_URL: embedded mode runs in one process")
    cmd = [sys.executable, "-m", "webapp", "serve", "--host", host, "--port", str(port),
           "--reuse-port"]
    children = [subprocess.Popen(cmd) for _ in range(workers)]
    asked_to_stop = False

    def forward(sig, _frame) -> None:
        nonlocal asked_to_stop
        asked_to_stop = True
        for child in children:
            if child.poll() is None:
                child.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    print(f"Book Marketing Agent on http://{host}:{port} ({workers} processes)", flush=True)
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    if not asked_to_stop:  # one stopped by itself: stop them all, and say how it ended
        first = next(child.returncode for child in children if child.returncode is not None)
        forward(signal.SIGTERM, None)
        for child in children:
            child.wait()
        return first or 1
    # A child still starting when the stop came has no handler yet and dies of the signal
    # itself: that is the stop asked for, not a failure.
    codes = [child.wait() for child in children]
    return next((c for c in codes if c not in (0, -signal.SIGTERM, -signal.SIGINT)), 0)


async def _freeze_startup_objects() -> None:
    """Keep what start-up made out of the collector's full passes. A full collection scans
    every tracked object, and a started server holds about 145,000 (modules, the app,
    SQLAlchemy's tables, templates, the writers' tables, loaded here for that and for the
    small batches written during a request and the embedded workers): each pass stopped the
    event loop, and every request and stream with it, for 30-95 ms under load (17-45 ms
    after). Frozen objects are never collected: only start-up's long-lived ones are frozen,
    once."""
    from jobs.tasks import preload_writers
    preload_writers()  # lives as long as the process
    gc.collect()  # what start-up left as garbage goes now, not into the frozen set
    gc.freeze()


def run_server(host: str, port: int, *, reuse_port: bool = False) -> int:
    from webapp import create_app

    app = create_app()
    app.before_serving(_freeze_startup_objects)  # after the app's own start-up
    config = Config()
    config.bind = [f"{host}:{port}"]
    if reuse_port:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the descriptor from here
    config.accesslog = None
    # Hypercorn's own errors go through our logging set-up, once (None would drop them).
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5
    # Connections waiting to be accepted (the kernel caps it at net.core.somaxconn). Hypercorn's
    # 100 overflowed when one client opened hundreds of streams at once: the kernel then reset
    # the connections it could not queue, other people's new connections included.
    config.backlog = 2048

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def shutdown_trigger() -> None:
            await stop.wait()
            # Open event streams must end themselves, or the server waits on them.
            app.extensions["runtime"].bus.stop_streams()

        await serve(app, config, shutdown_trigger=shutdown_trigger)

    if not reuse_port:
        print(f"Book Marketing Agent on http://{host}:{port}", flush=True)
    asyncio.run(run(), loop_factory=uvloop.new_event_loop)  # a faster loop, same asyncio API
    return 0


if __name__ == "__main__":
    sys.exit(main())
