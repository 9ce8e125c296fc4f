"""The event stream: ids increase, Last-Event-ID replays exactly what was missed."""
from __future__ import annotations

from jobs.events import parse_id
from tests.support import SSEReader, wait_until


def _open(stack, last_id=None) -> SSEReader:
    reader = stack.events(last_id)
    reader.wait_open()
    return reader


def _run_task(stack, reader) -> str:
    task_id = stack.queue(platforms=["twitter", "mastodon"], count_per_platform=2)
    wait_until(lambda: any(t["status"] == "SUCCESS" for _, t in reader.task_events(task_id)),
               30, f"SUCCESS of {task_id} on the stream")
    return task_id


def test_ids_increase_and_reconnect_replays_without_gap_or_duplicate(stack):
    full = _open(stack)
    first = _run_task(stack, full)
    cut = full.task_events(first)[2][0]  # the client "drops" after this event

    second = _run_task(stack, full)  # happens while the other client is away
    full.close()
    expected = [eid for eid, _, _ in full.events if eid is not None]
    positions = [parse_id(eid)[1] for eid in expected]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)

    resumed = stack.events(cut)
    last = full.task_events(second)[-1][0]
    wait_until(lambda: any(eid == last for eid, _, _ in resumed.events), 10, "the replay")
    resumed.close()
    got = [eid for eid, _, _ in resumed.events]
    assert got[: len(expected) - expected.index(cut) - 1] == expected[expected.index(cut) + 1:]


def test_unknown_epoch_is_told_to_resync(stack):
    reader = stack.events("deadbeef:1-0")
    wait_until(lambda: reader.events, 10, "the resync event")
    reader.close()
    event_id, kind, data = reader.events[0]
    assert kind == "resync"
    assert data["reason"]


def test_garbage_event_id_is_told_to_resync(stack):
    reader = stack.events("not an id")
    wait_until(lambda: reader.events, 10, "the resync event")
    reader.close()
    assert reader.events[0][1] == "resync"


def test_keepalive_comments_flow_on_a_quiet_stream(stack):
    reader = _open(stack)
    wait_until(lambda: reader.comments >= 2, 10, "two keep-alive comments")
    reader.close()
