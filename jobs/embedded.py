"""Embedded mode: Huey's consumer running as threads inside the web process."""
from __future__ import annotations

import threading

from huey.consumer import Consumer, Worker


class _WakeableWorker(Worker):
    """SqliteHuey cannot block on an empty queue; wait on an event set by enqueue instead
    of sleeping the full back-off, so a new task starts at once."""

    wake: threading.Event

    def sleep(self) -> None:
        if self.delay > self.max_delay:
            self.delay = self.max_delay
        if self.wake.wait(self.delay):
            self.wake.clear()
        self.delay *= self.backoff


class EmbeddedConsumer(Consumer):
    worker_class = _WakeableWorker

    def __init__(self, huey, wake: threading.Event, **options) -> None:
        self._wake = wake
        super().__init__(huey, worker_type="thread", **options)

    def _create_worker(self):
        worker = super()._create_worker()
        worker.wake = self._wake
        return worker

    def _set_signal_handlers(self) -> None:
        # The web server owns this process's signals.
        pass
