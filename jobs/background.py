"""A daemon thread that runs an object's `_loop` until `stop()`: the relay, the reaper and
the webhook deliverer, the alert checks and the alert sender each run one per process."""
from __future__ import annotations

import threading


class BackgroundThread:
    thread_name = "background"
    join_timeout = 5.0  # how long stop() waits for a pass in progress

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)

    def _loop(self) -> None:
        raise NotImplementedError
