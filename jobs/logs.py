"""Logging set-up shared by the web server and the worker."""
from __future__ import annotations

import logging

from jobs.outage import QuietOutageErrors


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s - %(levelname)s - %(name)s - %(message)s")
    logging.getLogger().setLevel(level)
    # Huey logs every task at INFO; at volume that costs half the throughput.
    logging.getLogger("huey").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # A Redis outage is one line when it starts and one when it ends, not a traceback per
    # failed call (jobs/outage.py).
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QuietOutageErrors) for f in handler.filters):
            handler.addFilter(QuietOutageErrors())
