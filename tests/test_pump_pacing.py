"""The stream pump coalesces deliveries while events keep coming, and loses none.

A pass writes every stream's pending events in one write each; while events keep coming the
next pass waits (PACE × the last pass's writing time, at most MAX_GAP), so what arrives
meanwhile leaves in the same write. Here the wait is made long so that the events published
during it are certain to arrive within it: they must reach the stream in one write, after
the first event's own, every one of them, in order.
"""
from __future__ import annotations

import asyncio
import contextlib
import re

from jobs.events import MemoryEventBus
from webapp import fanout
from webapp.routes.events import _JsonView

ID = re.compile(rb"^id: (\S+)$", re.M)


class _Socket:
    """What the pump writes to: each write kept as it came."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.changed = asyncio.Event()

    def write(self, data: bytes) -> None:
        if data:
            self.writes.append(data)
            self.changed.set()

    backed_up = False

    async def drain(self) -> None:
        return None

    def idle_for(self, now: float) -> float:
        return 0.0

    def ids(self) -> list[bytes]:
        return ID.findall(b"".join(self.writes))

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.ids()) < count:
                self.changed.clear()
                await self.changed.wait()


async def _turns(bus: MemoryEventBus, n: int) -> None:
    """Let the event reach the hub, then let the loop turn `n` times."""
    end = bus._hub.end
    async with asyncio.timeout(10):
        while bus._hub.end == end:
            await asyncio.sleep(0)
    for _ in range(n):
        await asyncio.sleep(0)


def _event(n: int) -> dict:
    return {"kind": "task", "task": {"task_id": f"t{n % 3}", "owner": "a@example.com",
                                     "status": "STARTED", "progress": {"done": n, "total": 9}}}


def test_events_during_the_pause_leave_together_in_order(monkeypatch):
    monkeypatch.setattr(fanout, "PACE", 10_000)   # the next pass waits the whole MAX_GAP
    monkeypatch.setattr(fanout, "MAX_GAP", 1.0)

    async def run() -> None:
        bus = MemoryEventBus(1000)
        await bus.start()
        pump = fanout.Pump(bus, keepalive=15)
        sockets = [_Socket() for _ in range(3)]
        with contextlib.ExitStack() as cursors:
            served = [asyncio.create_task(pump.serve(
                fanout._Follower(cursors.enter_context(bus.follow()),
                                 _JsonView(None, fanout.Batches())), sock))
                for sock in sockets]
            await asyncio.sleep(0)  # each stream registers with the pump
            first = bus.publish(_event(0))
            for sock in sockets:
                await sock.wait_for(1)
            # The pump now waits before its next pass: what is published meanwhile joins it.
            rest = []
            for n in range(1, 8):
                rest.append(bus.publish(_event(n)))
                await _turns(bus, 10)  # time enough for a pass that did not wait
            for sock in sockets:
                await sock.wait_for(8)
                assert sock.ids() == [i.encode() for i in [first, *rest]]
                assert len(sock.writes) == 2, "the events of the pause left in one write"
            await bus.close()
            await asyncio.wait_for(asyncio.gather(*served), 10)

    asyncio.run(run())
