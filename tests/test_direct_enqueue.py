"""The plain single status check is answered below Quart (webapp/direct_enqueue.py) with
every guarantee of the route; anything else reaches the route with its body intact."""
from __future__ import annotations

import asyncio
import http.client
import json

import redis

from jobs import users
from jobs.runtime import build_runtime
from jobs.settings import load_settings
from tests.support import wait_until
from webapp.direct_enqueue import DirectEnqueue
from webapp.routes.api import status_check


class _App:
    """What the middleware reads of the Quart app."""

    def __init__(self, rt) -> None:
        self.extensions = {"runtime": rt, "tokens": users.TokenCache(rt.db)}
        self.view_functions = {"api.status_check": status_check}


def _call(middleware, *, token: str | None, body: bytes | list[bytes] = b"", headers=(),
          query: bytes = b"", scheme: str = "http"):
    """(what the client received, what reached the route: its body or None)."""
    chunks = body if isinstance(body, list) else [body]
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]
    sent, routed = [], []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def route(scope, receive, send):
        got = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                got += b"<disconnect>"
                break
            got += message["body"]
            if not message.get("more_body"):
                break
        routed.append(got)

    middleware.inner = route
    auth = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope = {"type": "http", "method": "POST", "path": "/api/status-check", "scheme": scheme,
             "query_string": query, "headers": auth + list(headers)}
    asyncio.run(middleware(scope, receive, send))
    return sent, (routed[0] if routed else None)


def _together(middleware, tokens: list[str]) -> list[dict]:
    """Plain status checks sent at the same moment; their answers."""
    async def one(token: str) -> dict:
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)
        await middleware({"type": "http", "method": "POST", "path": "/api/status-check",
                          "scheme": "http", "query_string": b"",
                          "headers": [(b"authorization", f"Bearer {token}".encode())]},
                         receive, send)
        assert sent[0]["status"] == 202
        return json.loads(sent[1]["body"])

    async def main():
        return await asyncio.gather(*(one(t) for t in tokens))
    return asyncio.run(main())


def test_only_the_plain_case_is_answered_below_the_route(tmp_path, redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/907"
    rt = build_runtime(load_settings(data_dir=tmp_path, redis_url=url), worker_kind="thread")
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        manager = users.create_user(rt.db, "boss@example.com", "manager")
        author = users.create_user(rt.db, "ann@example.com", "author")
        viewer = users.create_user(rt.db, "vic@example.com", "viewer")
        boss, ann, vic = (users.create_token(rt.db, u.id)[0] for u in (manager, author, viewer))
        middleware = DirectEnqueue(None, _App(rt))

        # Answered here: tracked as a task queued by the route is.
        for body, owner, who in ((b"", "boss@example.com", boss), (b"{}", "boss@example.com", boss),
                                 (b'{"user_id": "zed@example.com"}', "zed@example.com", boss),
                                 (b'{"user_id": "ann@example.com"}', "ann@example.com", ann),
                                 ([b'{"user_', b'id": null}'], "ann@example.com", ann)):
            sent, routed = _call(middleware, token=who, body=body)
            assert routed is None, body
            start, answer = sent
            assert start["status"] == 202
            headers = dict(start["headers"])
            assert headers[b"content-type"] == b"application/json"
            assert headers[b"cache-control"] == b"no-store" and b"content-security-policy" in headers
            assert b"strict-transport-security" not in headers
            reply = json.loads(answer["body"])
            assert reply["status"] == "status_check_queued" and reply["timestamp"].endswith("Z")
            record = rt.tracker.get(reply["task_id"])
            assert (record["type"], record["status"], record["owner"]) == ("status_check", "PENDING", owner)
            assert [r["status"] for r in rt.tracker.timeline(reply["task_id"])] == ["PENDING"]
            assert reply["task_id"] in rt.queued_ids()
        sent, _ = _call(middleware, token=boss, scheme="https")
        assert dict(sent[0]["headers"])[b"strict-transport-security"] == b"max-age=31536000"
        assert len(client.xrange("bma:events")) == 6  # one creation event each

        # Requests that arrive together are recorded and queued together: one transaction
        # and one Redis round trip, each task tracked as if queued alone.
        groups = []
        submit_many = rt.submit_many
        rt.submit_many = lambda specs: groups.append(len(specs)) or submit_many(specs)
        try:
            together = _together(middleware, [boss] * 10 + [ann] * 5)
        finally:
            rt.submit_many = submit_many
        assert sum(groups) == 15 and len(groups) <= 2, groups
        assert len({r["task_id"] for r in together}) == 15
        for reply in together:
            assert [r["status"] for r in rt.tracker.timeline(reply["task_id"])] == ["PENDING"]
            assert reply["task_id"] in rt.queued_ids()
        assert sorted(rt.tracker.get(r["task_id"])["owner"] for r in together) == \
            ["ann@example.com"] * 5 + ["boss@example.com"] * 10
        assert len(client.xrange("bma:events")) == 6 + 15

        # Everything else reaches the route, with the body as the client sent it.
        queued = len(rt.queued_ids())
        for kwargs in ({"token": None},
                       {"token": "bma_not_a_token"},
                       {"token": vic},  # viewers may not queue work
                       {"token": ann, "body": b'{"user_id": "zed@example.com"}'},  # not hers
                       {"token": boss, "headers": [(b"idempotency-key", b"k1")]},
                       {"token": boss, "body": b'{"callback_url": "https://example.com/hook"}'},
                       {"token": boss, "query": b"x=1"},
                       {"token": boss, "body": b"[1]"},
                       {"token": boss, "body": b'{"user_id": ""}'},
                       {"token": boss, "body": b"{" + b" " * 2000 + b"}"},
                       {"token": boss, "body": [b"{", b"\x00"]}):
            sent, routed = _call(middleware, **kwargs)
            assert sent == [], kwargs
            assert routed == b"".join(kwargs["body"]) if isinstance(kwargs.get("body"), list) \
                else routed == kwargs.get("body", b""), kwargs
        # A client gone mid-body: the route sees what came and the disconnect.
        incomplete = {"type": "http.request", "body": b"{", "more_body": True}
        sent, routed = [], []

        async def route(scope, receive, send):
            routed.extend([await receive(), await receive()])

        async def receive(pending=[incomplete]):  # noqa: B006 - one request
            return pending.pop() if pending else {"type": "http.disconnect"}

        middleware.inner = route
        asyncio.run(middleware({"type": "http", "method": "POST", "path": "/api/status-check",
                                "query_string": b"", "headers": [(b"authorization", f"Bearer {boss}".encode())]},
                               receive, sent.append))
        assert [m["type"] for m in routed] == ["http.request", "http.disconnect"]
        assert len(rt.queued_ids()) == queued  # none of these queued anything here
    finally:
        client.close()
        rt.close()


def _request(conn, token: str | None, body: bytes = b"", headers: dict | None = None):
    all_headers = {"Content-Length": str(len(body)), **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    conn.request("POST", "/api/status-check", body=body, headers=all_headers)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def test_status_checks_over_one_keep_alive_connection(fresh_stack):
    stack = fresh_stack("redis").start()
    viewer = stack.create_user("vic@example.com", "viewer")
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    events = stack.events().wait_open()  # before the first task, so its events reach it too
    try:
        # The plain case and the route's cases, mixed on one connection: each answer is the
        # route's, and the connection stays in step.
        status, plain_headers, body = _request(conn, stack.token)
        assert status == 202
        first = json.loads(body)["task_id"]
        status, route_headers, body = _request(conn, stack.token, headers={"Idempotency-Key": "a"})
        assert status == 202
        by_key = json.loads(body)["task_id"]
        ignore = {"date", "content-length"}
        assert {k: v for k, v in plain_headers.items() if k not in ignore} == \
            {k: v for k, v in route_headers.items() if k not in ignore}
        status, headers, body = _request(conn, stack.token, headers={"Idempotency-Key": "a"})
        assert status == 202 and json.loads(body)["task_id"] == by_key
        assert headers["idempotent-replayed"] == "true"
        assert _request(conn, None)[0] == 401
        assert _request(conn, "bma_wrong")[0] == 401
        status, _, body = _request(conn, viewer)
        assert status == 403 and json.loads(body)["error"] == "forbidden"
        status, _, body = _request(conn, stack.token, b"[1]")
        assert status == 400 and json.loads(body)["error"] == "bad_json"
        status, _, body = _request(conn, stack.token, b'{"user_id": 5}')
        assert status == 400 and json.loads(body)["error"] == "invalid_request"
        status, _, body = _request(conn, stack.token, b'{"note": "%00"}',
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 400 and json.loads(body)["error"] == "invalid_text"
        ids = [first, by_key]
        for i in range(20):
            status, _, body = _request(conn, stack.token, b'{"user_id": "user123"}' if i % 2 else b"")
            assert status == 202, body
            ids.append(json.loads(body)["task_id"])
        # Each ran through the tracked pipeline: waiting, then run by the worker, and every
        # change reached the event stream.
        for task_id in ids:
            record = stack.wait_status(task_id, "SUCCESS")
            assert record["owner"] in ("manager@example.com", "user123")
            timeline = stack.client.get(f"/api/tasks/{task_id}/timeline").json()["timeline"]
            assert [t["status"] for t in timeline][:1] == ["PENDING"]
        def seen(task_id: str) -> bool:
            statuses = [task["status"] for _, task in events.task_events(task_id)]
            return statuses[:1] == ["PENDING"] and statuses[-1:] == ["SUCCESS"]
        wait_until(lambda: all(seen(t) for t in ids), 20, "every task's events")
    finally:
        events.close()
        conn.close()


def test_headers_are_read_as_the_route_reads_them(tmp_path, redis_server):
    """The route reads a form-typed body as form fields and refuses unstorable text in them
    (webapp/inputs.py): such a body, JSON or not, is not the plain case. Of several
    Authorization headers the route reads the first."""
    url = redis_server.url.rsplit("/", 1)[0] + "/908"
    rt = build_runtime(load_settings(data_dir=tmp_path, redis_url=url), worker_kind="thread")
    try:
        manager = users.create_user(rt.db, "boss@example.com", "manager")
        boss = users.create_token(rt.db, manager.id)[0]
        middleware = DirectEnqueue(None, _App(rt))
        body = b'{"user_id": "boss@example.com", "note": "%00"}'  # a NUL once form-decoded
        for kind in (b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
                     b"Application/X-WWW-Form-Urlencoded; charset=utf-8"):
            sent, routed = _call(middleware, token=boss, body=body,
                                 headers=[(b"content-type", kind)])
            assert sent == [] and routed == body, kind
        sent, routed = _call(middleware, token=boss, body=body,
                             headers=[(b"content-type", b"application/json")])
        assert sent[0]["status"] == 202 and routed is None
        assert len(rt.queued_ids()) == 1

        for first, second in ((b"Bearer bma_wrong", f"Bearer {boss}".encode()),
                              (b"Basic Ym9zczpwdw==", f"Bearer {boss}".encode())):
            sent, routed = _call(middleware, token=None, headers=[(b"authorization", first),
                                                                 (b"authorization", second)])
            assert sent == [] and routed == b"", first
        sent, routed = _call(middleware, token=None, headers=[
            (b"authorization", f"Bearer {boss}".encode()), (b"authorization", b"Bearer bma_wrong")])
        assert sent[0]["status"] == 202 and routed is None
        assert len(rt.queued_ids()) == 2
    finally:
        rt.close()
