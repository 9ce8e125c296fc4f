"""The fan-out benchmark's stream reader finds every message whatever the reads' split.

A client that falls behind reads 64 KB at a time, cutting messages anywhere; the reader
once missed a message whose `id:` line began a read (2 of 8 flood runs reported streams
"without the final event" that the server had sent them).
"""
from __future__ import annotations

import random

from bench.bench_fanout import StreamParser, event_ids


def _chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def _messages(first: int, last: int) -> bytes:
    return b"".join(b"id: e:1-%d\nevent: task\ndata: {\"n\": %d}\n\n" % (n, n)
                    for n in range(first, last + 1))


BODY = _chunked(b": connected\n\n", _messages(1, 3), b": keep-alive\n\n", _messages(4, 9),
                _messages(10, 10) + b"data: <div>panels</div>\n\n")
EVERY_ID = [b"e:1-%d" % n for n in range(1, 11)]


def _read(pieces: list[bytes]) -> tuple[list[bytes], bool]:
    parser, ids = StreamParser(), []
    for piece in pieces:
        ids += event_ids(parser.feed(piece))
    return ids, parser.ended


def test_every_split_in_two_finds_every_id_and_the_end():
    for cut in range(len(BODY) + 1):
        assert _read([BODY[:cut], BODY[cut:]]) == (EVERY_ID, True), cut


def test_random_splits_find_every_id_and_the_end():
    rng = random.Random(7)
    for _ in range(500):
        cuts = sorted(rng.sample(range(1, len(BODY)), rng.randint(1, 12)))
        pieces = [BODY[a:b] for a, b in zip([0, *cuts], [*cuts, len(BODY)])]
        assert _read(pieces) == (EVERY_ID, True), cuts
