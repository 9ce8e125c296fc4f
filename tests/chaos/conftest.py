"""The chaos suite: real redis-server, real worker processes, real kills.

`make test` runs the short version; `make chaos` (CHAOS_LONG=1) runs the long one. Each test
records its figures (tasks, kills, recovered, lost, duplicated, time to recover), printed at
the end of the run and written to chaos-figures.json in the run's artifacts folder.
"""
from __future__ import annotations

import json
import os

import pytest

LONG = os.environ.get("CHAOS_LONG") == "1"
FIGURES: list[dict] = []


@pytest.fixture
def figures(request, artifacts):
    def record(**values) -> None:
        FIGURES.append({"test": request.node.name, "long": LONG, **values})
        (artifacts / "chaos-figures.json").write_text(json.dumps(FIGURES, indent=2))
    return record


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section(f"chaos figures ({'long' if LONG else 'short'} run)")
    for row in FIGURES:
        values = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("test", "long"))
        terminalreporter.write_line(f"{row['test']}: {values}")
