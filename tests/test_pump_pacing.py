"""The stream pump coalesces deliveries once it has spent its budget, and loses none.

A pass writes every stream's pending events in one write each; once the pump has spent its
budget of writing time, the next pass waits for it to be earned back (at most MAX_GAP), so
what arrives meanwhile leaves in the same write. The waits are made long here so that the
outcome does not depend on timing: held events arrive within the wait, and events that
must not be held would time the test out.
"""
from __future__ import annotations

import asyncio
import contextlib
import re

import pytest

from jobs.events import MemoryEventBus
from webapp import fanout, sse
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


def _stream(pump: fanout.Pump, cursor) -> tuple[_Socket, asyncio.Task]:
    """A stream of `cursor` served by `pump`, writing to a _Socket."""
    sock = _Socket()
    served = asyncio.create_task(pump.serve(
        fanout._Follower(cursor, _JsonView(None, None, fanout.Batches())), sock))
    return sock, served


def _event(n: int) -> dict:
    return {"kind": "task", "task": {"task_id": f"t{n % 3}", "owner": "a@example.com",
                                     "status": "STARTED", "progress": {"done": n, "total": 9}}}


async def _serve_and_publish(count: int, streams: int = 3) -> list[_Socket]:
    """`streams` streams on a pump; one event, then `count - 1` more, each given time enough
    to leave on its own unless the pump holds it; every stream must get all, in order."""
    bus = MemoryEventBus(1000)
    await bus.start()
    pump = fanout.Pump(bus, keepalive=15)
    with contextlib.ExitStack() as cursors:
        sockets, served = zip(*(_stream(pump, cursors.enter_context(bus.follow()))
                                for _ in range(streams)))
        await asyncio.sleep(0)  # each stream registers with the pump
        ids = [bus.publish(_event(0))]
        for sock in sockets:
            await sock.wait_for(1)
        for n in range(1, count):
            ids.append(bus.publish(_event(n)))
            await _turns(bus, 10)  # time enough for a pass that does not wait
        for sock in sockets:
            await sock.wait_for(count)
            assert sock.ids() == [i.encode() for i in ids]
        await bus.close()
        await asyncio.wait_for(asyncio.gather(*served), 10)
    return sockets


def _budget(monkeypatch, *, burst: float, share: float, max_gap: float) -> None:
    """The pump's budget: what it saves at most, the share of time it earns, its longest wait."""
    monkeypatch.setattr(fanout, "PUMP_BURST", burst)
    monkeypatch.setattr(fanout, "PUMP_SHARE", share)
    monkeypatch.setattr(fanout, "MAX_GAP", max_gap)


@pytest.fixture
def requests_coming(monkeypatch):
    """As if the process kept answering requests: the pump's budget binds."""
    monkeypatch.setattr(sse.requests, "last", 0.0)
    monkeypatch.setattr(fanout, "REQUESTS_RECENT", float("inf"))


def test_events_during_the_wait_leave_together_in_order(monkeypatch, requests_coming):
    # No budget saved, hardly any earned: the pass after the first waits the whole MAX_GAP.
    _budget(monkeypatch, burst=0.0, share=1e-6, max_gap=1.0)
    for sock in asyncio.run(_serve_and_publish(8)):
        assert len(sock.writes) == 2, "the events of the wait left in one write"


def test_events_leave_at_once_while_budget_is_saved(monkeypatch, requests_coming):
    # Budget for thousands of passes, none earned: were any pass held, it would wait 60 s.
    _budget(monkeypatch, burst=1000.0, share=1e-6, max_gap=60.0)
    for sock in asyncio.run(_serve_and_publish(8)):
        assert len(sock.writes) == 8, "each event left in its own pass"


def test_without_requests_to_make_room_for_the_budget_does_not_bind(monkeypatch):
    # No budget, none earned, but no request for a long while: were a pass held, it would
    # wait 60 s.
    monkeypatch.setattr(sse.requests, "last", 0.0)
    monkeypatch.setattr(fanout, "REQUESTS_RECENT", 0.0)
    _budget(monkeypatch, burst=0.0, share=1e-6, max_gap=60.0)
    for sock in asyncio.run(_serve_and_publish(8)):
        assert len(sock.writes) == 8, "each event left in its own pass"


def test_a_spell_of_slow_passes_is_not_paid_for_afterwards(monkeypatch, requests_coming):
    """One pass that took 1,000 s (a starved process) makes the next wait MAX_GAP once;
    after that, events leave at once again."""
    _budget(monkeypatch, burst=0.0, share=0.2, max_gap=5.0)
    real_pass = fanout.Pump._pass
    slow = [True]

    async def timed_pass(self, followers):
        spent = await real_pass(self, followers)
        if slow:
            slow.clear()
            return 1000.0
        return spent

    monkeypatch.setattr(fanout.Pump, "_pass", timed_pass)

    async def run() -> None:
        bus = MemoryEventBus(1000)
        await bus.start()
        with bus.follow() as cursor:
            sock, served = _stream(fanout.Pump(bus, keepalive=15), cursor)
            await asyncio.sleep(0)
            bus.publish(_event(0))
            await sock.wait_for(1)            # the slow pass
            bus.publish(_event(1))
            await sock.wait_for(2, timeout=30)  # waits MAX_GAP: the debt, as far as forgiven
            bus.publish(_event(2))
            # Owing 1,000 s at a fifth, it would wait MAX_GAP again (and for 5,000 s more).
            await sock.wait_for(3, timeout=2.5)
            await bus.close()
            await asyncio.wait_for(served, 10)

    asyncio.run(run())


def test_requests_other_than_streams_are_noted(monkeypatch):
    monkeypatch.setattr(sse.requests, "last", 0.0)

    monkeypatch.setattr(sse.requests, "active", 0)
    seen = []

    async def app(scope, receive, send) -> None:
        seen.append(sse.requests.active)

    direct = sse.DirectStreams(app, lambda path: path == "/api/events")
    asyncio.run(direct({"type": "http", "method": "GET", "path": "/api/events"}, None, None))
    assert sse.requests.last == 0.0, "a stream is not a request the pump makes room for"
    asyncio.run(direct({"type": "http", "method": "GET", "path": "/healthz"}, None, None))
    assert sse.requests.last > 0.0
    assert seen == [0, 1] and sse.requests.active == 0, "counted while it is answered"


def _one_stream(scenario) -> None:
    """Run `scenario(bus, socket)` against one stream served by a pump."""
    async def run() -> None:
        bus = MemoryEventBus(1000)
        await bus.start()
        with bus.follow() as cursor:
            sock, served = _stream(fanout.Pump(bus, keepalive=15), cursor)
            await asyncio.sleep(0)  # the stream registers with the pump
            await scenario(bus, sock)
            await bus.close()
            await asyncio.wait_for(served, 10)

    asyncio.run(run())


@pytest.fixture
def give_way(monkeypatch):
    """No request in flight to begin with, a pass's wait for them as long as needed; the
    test sets how long a request is given way to."""
    monkeypatch.setattr(sse.requests, "active", 0)
    monkeypatch.setattr(fanout, "MAX_GAP", 60.0)
    return lambda seconds: monkeypatch.setattr(fanout, "GIVE_WAY_FOR", seconds)


def test_a_pass_gives_way_to_a_request_being_answered(give_way):
    """While a request that has just begun is being answered, the pass writes nothing;
    once it is answered, the pass goes on (waits made long: only the answer can end one)."""
    give_way(60.0)

    async def scenario(bus, sock) -> None:
        sse.requests.began()
        bus.publish(_event(0))
        await _turns(bus, 50)
        assert sock.writes == [], "the pass waited for the request"
        sse.requests.ended()
        await sock.wait_for(1, timeout=5)

    _one_stream(scenario)


def test_a_long_request_holds_passes_back_only_briefly(give_way):
    give_way(0.05)

    async def scenario(bus, sock) -> None:
        sse.requests.began()  # and never answered while the events flow
        for n in range(3):
            bus.publish(_event(n))
            await sock.wait_for(n + 1, timeout=5)
        sse.requests.ended()

    _one_stream(scenario)
