"""A local server speaking the OpenAI Chat Completions and Anthropic Messages protocols.

Tests steer it through the book title they send: a title containing SLOW makes every
answer take SLOW_SECONDS, one containing STALL makes the answer wait until the server is
closed, as a hung model server would, and one containing MODEL-FAILS-<status> (401, 404,
429, 500, ...) gets that HTTP error every time, with `Retry-After: 0` on the transient
ones so retries run out quickly; `failures[status]` counts the answers of each.
Anything else is answered at once.
"""
from __future__ import annotations

import collections
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_SECONDS = 0.4
FAILS = re.compile(r"MODEL-FAILS-(\d{3})")
ERROR_BODIES = {
    401: {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                    "code": "invalid_api_key"}},
    403: {"error": {"message": "You do not have access to this model", "type": "permission_error"}},
    404: {"error": {"message": "The model does not exist", "type": "invalid_request_error",
                    "code": "model_not_found"}},
    429: {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
}


class FakeLLM:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._stall = threading.Event()
        self.requests = 0
        self.failures: collections.Counter[int] = collections.Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                server.requests += 1
                failing = FAILS.search(body)
                if failing:
                    status = int(failing.group(1))
                    server.failures[status] += 1
                    self._answer(status, ERROR_BODIES.get(status, {"error": {"message": "failed"}}),
                                 {} if status < 429 and status != 408 else {"Retry-After": "0"})
                    return
                if "STALL" in body:
                    server._stall.wait()
                elif "SLOW" in body:
                    time.sleep(SLOW_SECONDS)  # the model "thinking"
                text = "A quiet island, a stranger, and a letter twenty years late. Read it tonight."
                content = json.dumps({"posts": [text]})
                if self.path.endswith("/messages"):
                    payload = {"id": "msg", "type": "message", "role": "assistant",
                               "content": [{"type": "text", "text": content}],
                               "stop_reason": "end_turn"}
                else:
                    payload = {"id": "cmpl", "object": "chat.completion", "choices": [{
                        "index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content}}]}
                self._answer(200, payload)

            def _answer(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def release_stalled(self) -> None:
        """Answer every request stalled so far; later ones stall again."""
        stall, self._stall = self._stall, threading.Event()
        stall.set()

    def close(self) -> None:
        self._stall.set()
        self.httpd.shutdown()
        self.httpd.server_close()
