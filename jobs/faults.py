"""Fault injection for the chaos tests: at a named dangerous step the process kills itself.

Off unless the FAULT_INJECTION setting names points, e.g. `after_record:0.05,after_dequeue:0.1`
(each a probability). Only tests set it. The points:
- `after_record`: a task is recorded but not yet queued (Runtime.submit, submit_many);
- `after_dequeue`: a worker took the message but has not claimed the record (Executor.run);
- `mid_recovery`: a lost run was recorded as RETRY but not yet queued again (Reaper).
"""
from __future__ import annotations

import logging
import os
import random
import signal

log = logging.getLogger("jobs.faults")

_points: dict[str, float] = {}
KNOWN = frozenset({"after_record", "after_dequeue", "mid_recovery"})


def configure(spec: str | None) -> None:
    _points.clear()
    for part in (spec or "").split(","):
        name, _, chance = part.strip().partition(":")
        if not name:
            continue
        if name not in KNOWN:
            raise ValueError(f"unknown fault point {name!r}; known: {', '.join(sorted(KNOWN))}")
        _points[name] = float(chance or 1)
    if _points:
        log.warning("fault injection is on (%s): this process may kill itself; tests only", spec)


def point(name: str) -> None:
    chance = _points.get(name)
    if chance and random.random() < chance:
        os.kill(os.getpid(), signal.SIGKILL)
