"""Run task workers against the Redis queue: `python huey_worker.py [--workers N]
[--worker-type thread|process] [--no-periodic]`.

SIGTERM or SIGINT stop the worker gracefully: running tasks get SHUTDOWN_GRACE seconds to
finish, then are handed back to the queue. A second SIGTERM or SIGINT stops it at once.
"""
from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys

from huey.consumer import Consumer

from jobs import priority, sqlite_turns
from jobs.logs import configure_logging
from jobs.reaper import Reaper
from jobs.runtime import build_runtime
from jobs.settings import SettingsError, load_settings

log = logging.getLogger("huey_worker")


class WorkerConsumer(Consumer):
    """SIGINT stops gracefully like SIGTERM (Huey's default makes one of them an immediate
    stop); a second signal of either kind stops at once.

    Process workers ignore both, so a signal to the whole process group (Ctrl-C, a service
    manager) stops them through the consumer too; the consumer interrupts them with SIGUSR2.
    """

    def get_environment(self, worker_type):
        env = super().get_environment(worker_type)
        if worker_type == "process":
            env.graceful, env.interrupt = signal.SIGTERM, signal.SIGUSR2
            init_child = env.init_child

            def init(process) -> None:
                init_child(process)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            env.init_child = init
        return env

    def _set_signal_handlers(self) -> None:
        self._signal_actions[signal.SIGINT] = (False, True)
        self._signal_actions[signal.SIGTERM] = (False, True)
        super()._set_signal_handlers()

    def _handle_signal(self, signum, frame) -> None:
        super()._handle_signal(signum, frame)
        for other in (signal.SIGINT, signal.SIGTERM):
            signal.signal(other, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="huey_worker.py", description=__doc__)
    parser.add_argument("--workers", type=int, default=settings.worker_concurrency,
                        help="worker threads or processes (default WORKER_CONCURRENCY)")
    parser.add_argument("--worker-type", choices=("thread", "process"), default="process",
                        help="process workers have hard timeouts and use every core (default)")
    parser.add_argument("--no-periodic", action="store_true",
                        help="do not schedule the daily/weekly tasks from this worker")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    configure_logging(settings.log_level)
    if not settings.redis_url:
        print("error: REDIS_URL is not set. Separate workers need Redis; without it the "
              "web process runs its own embedded workers (python -m webapp).", file=sys.stderr)
        return 2
    sqlite_turns.background()  # on SQLite, requests' writes go before this process's
    try:
        rt = build_runtime(settings, worker_kind=args.worker_type)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    consumer = WorkerConsumer(
        rt.huey, workers=args.workers, worker_type=args.worker_type, periodic=not args.no_periodic,
        shutdown_timeout=settings.shutdown_grace, check_worker_health=True, health_check_interval=1,
    )
    rt.executor.stopping = consumer.stop_flag.is_set
    if args.worker_type == "thread":
        rt.executor.threads = args.workers
    # Each worker process looks for stranded tasks from its watchdog (one acts at a time, see
    # jobs/reaper.py); the consumer's own process runs no database thread, since a fork
    # taken while one holds a lock would deadlock.
    rt.executor.housekeeping = Reaper(rt).reap_once
    if args.worker_type == "process":
        # Each process worker records that it stopped, so health does not report it lost.
        rt.huey.on_shutdown("executor")(rt.executor.stop)
    log.info("worker started: %d %s worker(s) on %s; %s", args.workers, args.worker_type,
             rt.choice.reason, priority.lower(settings.worker_nice))
    # Everything made at start-up (modules, the settings, the runtime) lives as long as the
    # worker: kept out of the collector's full passes, which otherwise walk all of it now and then
    # inside some task (a 200-post generation then took up to twice its CPU time), and which in
    # forked process workers would also copy the pages they touch.
    gc.freeze()
    try:
        consumer.run()
    finally:
        if args.worker_type == "thread":
            rt.executor.hand_back_all()
            rt.executor.stop()
        rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
