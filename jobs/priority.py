"""Background work yields the CPU to requests on a shared host.

A worker process lowers its own scheduling priority at start (WORKER_NICE, a nice value);
its process workers inherit it. Priority only matters while the CPU is contended: alone on
a machine the workers run as fast as before, while beside a web process the web's answers
no longer wait behind them for a core (bench/bench_api_load.py on 2 cores, every worker
busy: the API's p99 went from 13 times its idle figure to under 2 times).

Linux schedules processes grouped by session (autogroup), and a nice value weighs a process
only against others of its own group. So a worker that leads a session of its own (a
service, a container, `setsid`) lowers its group as well. One that shares a session (started
with `&` from the shell that runs the web) must not: that would lower the web too.
"""
from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def lower(nice: int) -> str:
    """Lower this process's priority by `nice`; says what was done, for the start-up log."""
    if nice == 0:
        return "normal priority (WORKER_NICE=0)"
    os.nice(nice)  # lowering needs no privilege; children forked later inherit it
    if os.getsid(0) != os.getpid():
        return f"nice {nice}"
    try:
        AUTOGROUP.write_text(str(nice))
    except OSError as exc:  # no autogroup on this system (another kernel, or built without)
        return f"nice {nice} (its session's scheduling group unchanged: {exc.strerror})"
    return f"nice {nice}, and its session's scheduling group"
