"""Hypercorn with an ASGI app that does nothing: `POST` answers 202 and anything else 200,
served the way `python -m webapp` serves (uvloop, no access log). bench_enqueue.py runs it
beside the product as the floor of one request on this machine: the server's own cost.

    .venv/bin/python bench/floor_app.py PORT
"""
from __future__ import annotations

import asyncio
import sys

import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config

BODY = b'{"status":"ok"}\n'


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 202 if scope["method"] == "POST" else 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{int(sys.argv[1])}"]
    config.accesslog = None
    print(f"floor on {config.bind[0]}", flush=True)
    asyncio.run(serve(app, config), loop_factory=uvloop.new_event_loop)


if __name__ == "__main__":
    main()
