"""Logging set-up shared by the web server and the worker."""
from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s - %(levelname)s - %(name)s - %(message)s")
    logging.getLogger().setLevel(level)
    # Huey logs every task at INFO; at volume that costs half the throughput.
    logging.getLogger("huey").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
