"""One author opening hundreds of event streams at once: past their cap each is refused with
429 JSON and Retry-After, every request gets an answer, and other people's health checks,
API calls and sign-ins keep answering; the cap is logged once.

`bench/bench_stream_flood.py` runs the same with 1,000 streams and the default cap.
"""
from __future__ import annotations

import asyncio
import json

import uvloop

from bench.bench_stream_flood import CAP_LINE, PASSWORD, Others, flood

STREAMS = 200
CAP = 10


def test_one_author_flooding_streams_is_refused_and_others_still_answer(fresh_stack):
    stack = fresh_stack("redis", STREAM_LIMIT_PER_USER=str(CAP))
    stack.worker_args = []
    stack.start()
    author = stack.create_user("flood@example.com", "author")
    stack.create_user("viewer@example.com", "viewer", PASSWORD)

    async def run():
        others, stop = Others(stack.base_url, stack.token, "viewer@example.com"), asyncio.Event()
        probing = asyncio.create_task(others.run(stop))
        streams = await flood(stack.port, "/api/events", author, STREAMS)
        while len(others.answers["sign-in"]) < 1:  # at least one sign-in during the flood
            await asyncio.sleep(0.05)
        stop.set()
        await probing
        for stream in streams:
            stream.close()
        return streams, others.answers

    streams, answers = asyncio.run(run(), loop_factory=uvloop.new_event_loop)
    statuses = [s.status for s in streams]
    assert statuses.count(200) == CAP and statuses.count(429) == STREAMS - CAP, \
        sorted(set(map(str, statuses)))
    for stream in streams:
        if stream.status == 429:
            assert stream.headers["retry-after"] == "5"
            body = json.loads(stream.body)
            assert body["error"] == "too_many_streams" and body["message"]
    assert {s for s, _ in answers["healthz"]} == {200}
    assert {s for s, _ in answers["manager API"]} == {200}
    assert {s for s, _ in answers["sign-in"]} == {302}
    assert stack.web.log().count(CAP_LINE) == 1
