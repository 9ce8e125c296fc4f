"""The web server restarted (SIGTERM, SIGKILL) under open streams: nothing missed or doubled."""
from __future__ import annotations

import signal

import pytest
import redis

from tests.chaos.conftest import LONG
from tests.chaos.helpers import CHAOS_ENV, ResumingStream, start_worker
from tests.support import wait_until


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_web_restart_under_open_streams(fresh_stack, figures, sig):
    stack = fresh_stack("redis", **CHAOS_ENV, STREAM_LIMIT_PER_USER="100")  # 50 streams, one user
    stack.worker_args = []
    stack.start()
    start_worker(stack, "wr-w0", 2)
    wait_until(lambda: stack.capacity() >= 2, 30, "worker processes")
    streams = [ResumingStream(stack.base_url, stack.token) for _ in range(50 if LONG else 10)]
    wait_until(lambda: all(s.connections for s in streams), 20, "streams to open")
    # Tasks run on the workers while the web server is away: their events must still arrive.
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    first = client.xrevrange("bma:events", count=1)
    start_after = first[0][0].decode() if first else "0-0"
    tasks = [stack.queue(platforms=["twitter", "facebook"], count_per_platform=1,
                         book={"title": f"SLOW ferry {i}"}) for i in range(6)]
    stack.web.stop(sig)
    stack.start_web()
    for task_id in tasks:
        stack.wait_status(task_id, {"SUCCESS", "FAILURE"}, timeout=60)
    logged = [e[0].decode() for e in client.xrange("bma:events", min=f"({start_after}")]
    epoch = client.get("bma:events:epoch").decode()
    wanted = [f"{epoch}:{entry}" for entry in logged]

    def caught_up() -> bool:
        return all(wanted[-1] in {i for i, _k, _d in s.events} for s in streams)
    wait_until(caught_up, 20, "every stream to catch up")
    missed = duplicated = 0
    for s in streams:
        ids = [i for i, _k, _d in s.events]
        later = [i for i in ids if i in set(wanted)]
        missed += len(set(wanted) - set(later))
        duplicated += len(later) - len(set(later))
        s.close()
    client.close()
    figures(signal=sig.name, streams=len(streams), events=len(wanted), missed=missed,
            duplicated=duplicated, resyncs=sum(len(s.resyncs) for s in streams))
    assert missed == 0 and duplicated == 0
