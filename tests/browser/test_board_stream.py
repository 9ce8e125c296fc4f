"""The board's stream, in process: every open board gets the same bytes for a change, and
the change is rendered once for all of them (the 2,000-boards-per-process budget)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib

from jobs import users
from jobs.settings import Settings
from webapp import create_app

BOARDS = 3


async def _next_message(connection, containing: str, timeout: float = 10) -> bytes:
    """The next whole SSE message that mentions `containing` (health ticks pass by too)."""
    buffer = b""

    async def read() -> bytes:
        nonlocal buffer
        while True:
            while b"\n\n" in buffer:
                message, buffer = buffer.split(b"\n\n", 1)
                if containing.encode() in message:
                    return message
            buffer += await connection.receive()

    return await asyncio.wait_for(read(), timeout)


def in_own_loop(test):
    """Run an async test in a thread with its own event loop: the session's Playwright
    keeps a loop running in the main thread, where pytest-asyncio cannot start another."""
    def run(tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)  # no developer .env
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _with_app(test, tmp_path)).result()
    run.__name__, run.__doc__ = test.__name__, test.__doc__  # not wraps: pytest would ask for `app`
    return run


async def _with_app(test, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=None, sse_keepalive=1.0,
                        llm_provider="offline")
    app = create_app(settings)
    rt = app.extensions["runtime"]
    manager = users.create_user(rt.db, "manager@example.com", "manager", "correct horse battery")
    token, _ = users.create_token(rt.db, manager.id)
    app.config["TEST_HEADERS"] = {"Authorization": f"Bearer {token}"}
    async with app.test_app() as test_app:
        app.config["TEST_CLIENT"] = test_app.test_client()
        await test(app)


@contextlib.asynccontextmanager
async def open_boards(app, count: int, **headers):
    client = app.config["TEST_CLIENT"]
    async with contextlib.AsyncExitStack() as stack:
        connections = []
        for _ in range(count):
            connection = await stack.enter_async_context(client.request(
                "/board/stream", headers={**app.config["TEST_HEADERS"], **headers}))
            await connection.send_complete()
            assert await _next_message(connection, ": connected")
            connections.append(connection)
        try:
            yield connections
        finally:
            for connection in connections:
                await connection.disconnect()  # the browser goes away; the stream ends


@in_own_loop
async def test_a_change_is_rendered_once_and_sent_alike_to_every_board(app):
    rt, feed = app.extensions["runtime"], app.extensions["live_feed"]
    async with open_boards(app, BOARDS) as boards:
        renders_before = feed.rows.renders
        record = await asyncio.to_thread(rt.tracker.create, task_type="status_check", owner="ada",
                                         params={}, max_attempts=1)
        row = f'id="task-{record["task_id"]}"'
        messages = [await _next_message(board, row) for board in boards]
    assert len(set(messages)) == 1, "every board receives the same bytes"
    assert messages[0].startswith(b"id: ")
    assert b'hx-swap-oob="taskRow target:#board strip:false"' in messages[0]
    assert feed.rows.renders - renders_before == 1


@in_own_loop
async def test_boards_that_must_resynchronise_share_one_rendering(app):
    feed = app.extensions["live_feed"]
    renders_before = feed.pages.renders
    async with open_boards(app, BOARDS, **{"Last-Event-ID": "0000dead:0-1"}) as boards:
        messages = [await _next_message(board, 'id="board-sections"') for board in boards]
    assert len(set(messages)) == 1
    assert b'hx-swap-oob="outerMorph"' in messages[0]
    assert feed.pages.renders - renders_before == 1
