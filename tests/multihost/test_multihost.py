"""The short multi-host run inside `make test`; `make multihost` runs the long one."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.multihost.netbed import BedUnavailable, check_can_run
from tests.support import PYTHON, ROOT, require


@pytest.mark.timeout(480)
def test_short_multihost_run_loses_nothing_and_every_board_sees_everything(tmp_path):
    try:
        check_can_run()
    except BedUnavailable as exc:
        message = f"the multi-host test bed cannot run here: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    require("redis-server", "the bed's Redis host runs a real Redis")
    summary = tmp_path / "summary.json"
    done = subprocess.run([PYTHON, "-m", "tests.multihost", "--tasks", "40", "--scale", "1",
                           "--deadline", "150", "--summary", str(summary)],
                          cwd=ROOT, capture_output=True, text=True, timeout=420)
    print(done.stdout[-6000:], done.stderr[-3000:])
    assert summary.exists(), "the run did not reach its verdict (see the output above)"
    figures = json.loads(summary.read_text())
    assert figures["lost"] == 0
    assert figures["duplicated"] == 0
    assert figures["missed_events"] == 0
    assert figures["duplicated_deliveries"] == 0
    assert figures["stale"] == 0
    assert figures["unasked_tasks"] == 0
    assert f"multihost: 40 tasks, 7 hosts, {figures['faults']} faults: lost 0, duplicated 0, " \
           "missed events 0" in done.stdout
    assert figures["falsely_lost"] == 0, "live work on other hosts was declared lost"
    assert done.returncode == 0
