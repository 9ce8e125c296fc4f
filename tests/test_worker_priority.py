"""Workers yield the CPU to the web on a shared host (WORKER_NICE, jobs/priority.py)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support import PYTHON, ROOT, wait_until

AUTOGROUP = Path("/proc/self/autogroup")


def _nice(pid: int) -> int:
    # /proc/<pid>/stat: the command may hold spaces, so fields are counted after its ")".
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _group_nice(pid: int) -> int | None:
    # "/autogroup-N nice K"; empty for a process in no group of its own (the kernel's default
    # group, e.g. a CI runner's session), and absent on kernels built without autogroup.
    path = Path(f"/proc/{pid}/autogroup")
    words = path.read_text().split() if path.exists() else []
    return int(words[2]) if len(words) == 3 else None


def test_a_worker_runs_below_the_web_by_default_and_still_runs_tasks(fresh_stack):
    stack = fresh_stack("redis")
    del stack.env["WORKER_NICE"]  # the product's default
    stack.start()
    wait_until(lambda: len(stack.client.get("/api/workers").json()["workers"]) == 3, 20,
               "three worker processes")
    consumer = stack.workers[0].popen.pid
    pids = [consumer, *(w["pid"] for w in stack.client.get("/api/workers").json()["workers"])]
    assert [_nice(pid) for pid in pids] == [10] * len(pids)
    assert _nice(stack.web.popen.pid) == 0
    if AUTOGROUP.exists():  # the worker leads its own session (tests start it so)
        assert _group_nice(consumer) == 10 and _group_nice(stack.web.popen.pid) == 0
    task_id = stack.client.post("/api/status-check").json()["task_id"]
    stack.wait_status(task_id, "SUCCESS")
    assert "nice 10" in stack.workers[0].log()


def test_a_worker_sharing_a_session_leaves_that_session_s_priority_alone():
    # Started the way `cmd &` starts it from the shell that runs the web: same session, whose
    # scheduling group (this test's too) must keep its priority.
    group_before = _group_nice(os.getpid())
    out = subprocess.run([PYTHON, "-c", "import os; from jobs import priority; "
                          "print(priority.lower(5)); print(os.nice(0))"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "nice 5" and int(out[1]) == os.nice(0) + 5
    assert _group_nice(os.getpid()) == group_before
