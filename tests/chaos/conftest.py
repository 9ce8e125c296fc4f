"""The chaos suite: real redis-server, real worker processes, real kills.

`make test` runs the short version; `make chaos` (CHAOS_LONG=1) runs the long one. Each test
records its figures (tasks, kills, recovered, lost, duplicated, time to recover), printed at
the end of the run and written to chaos-figures.json in the run's artifacts folder (each
worker process's own one when pytest runs with -n).
"""
from __future__ import annotations

import json
import os

import pytest

from tests.conftest import CHAOS_FIGURES

LONG = os.environ.get("CHAOS_LONG") == "1"
FIGURES: list[dict] = []


@pytest.fixture
def figures(request, artifacts):
    def record(**values) -> None:
        row = {"test": request.node.name, "long": LONG, **values}
        FIGURES.append(row)
        # Carried on the test's report, so the run's summary (tests/conftest.py) prints them
        # also when the tests ran in worker processes (pytest -n).
        request.node.user_properties.append((CHAOS_FIGURES, row))
        (artifacts / "chaos-figures.json").write_text(json.dumps(FIGURES, indent=2))
    return record
