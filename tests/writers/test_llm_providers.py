"""LLM writers against a local HTTP server speaking each protocol (no network, no real keys)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from jobs.platforms import PLATFORMS, extract_hashtags
from jobs.writers.llm_http import ProviderError, RetryPolicy
from jobs.writers import Post, make_writer

from .fixture_books import BOOKS, TODAY

API_KEY = "sk-test-DO-NOT-LEAK-4f9a2c"
BOOK = BOOKS["last-dragon"]
LINK = BOOK.link
GOOD_POSTS = [
    f"Mira has one winter to wake the last dragon. Meet The Last Dragon of Winter by Ann Lee. {LINK} #Fantasy",
    f"What would you climb a frozen mountain for? The Last Dragon of Winter has an answer. Read it: {LINK} #FoundFamily",
    f"Old magic, old secrets and one very old dragon. The Last Dragon of Winter is out on March 10. {LINK} #Dragons",
    f"The village kept a secret for a hundred years. The Last Dragon of Winter tells it. {LINK} #CosyFantasy",
]
OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


def openai_reply(content: str) -> Response:
    body = {"id": "c1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    return Response(json.dumps(body), status=200, content_type="application/json")


def posts_json(texts: list[str]) -> str:
    return json.dumps({"posts": [{"text": t, "angle": "teaser"} for t in texts]})


def anthropic_tool_reply(texts: list[str]) -> Response:
    body = {
        "id": "m1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "t1", "name": "submit_posts",
                     "input": {"posts": [{"text": t, "angle": "question"} for t in texts]}}],
        "stop_reason": "tool_use",
    }
    return Response(json.dumps(body), status=200, content_type="application/json")


def anthropic_text_reply(text: str) -> Response:
    body = {"id": "m1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": text}]}
    return Response(json.dumps(body), status=200, content_type="application/json")


class Recorder:
    """Serves scripted responses in order and remembers what arrived and when."""

    def __init__(self, *responses: Callable[[Request], Response]) -> None:
        self._responses = list(responses)
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.times.append(time.monotonic())
            self.bodies.append(json.loads(request.get_data() or b"{}"))
            self.headers.append(dict(request.headers))
            index = min(len(self.bodies) - 1, len(self._responses) - 1)
        return self._responses[index](request)


def openai_writer(httpserver: HTTPServer, timeout: float = 5.0):
    return make_writer("openai", base_url=httpserver.url_for("/v1"), api_key=API_KEY, model="test-model", timeout=timeout)


def anthropic_writer(httpserver: HTTPServer, timeout: float = 5.0):
    return make_writer("anthropic", base_url=httpserver.url_for(""), api_key=API_KEY, model="test-claude", timeout=timeout)


def write(writer, platform: str = "twitter", count: int = 3) -> list[Post]:
    return list(writer.write_batch(BOOK, PLATFORMS[platform], count, seed=11, today=TODAY))


# --- OpenAI-compatible Chat Completions ------------------------------------------------------


def test_openai_success_uses_structured_output(httpserver: HTTPServer) -> None:
    recorder = Recorder(lambda r: openai_reply(posts_json(GOOD_POSTS)))
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    posts = write(openai_writer(httpserver))
    assert [p.writer for p in posts] == ["openai"] * 3
    assert all(p.note == "" and PLATFORMS["twitter"].fits(p.text) for p in posts)
    assert posts[0].text.startswith("Mira has one winter")
    body = recorder.bodies[0]
    assert body["model"] == "test-model"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["posts"]
    assert recorder.headers[0]["Authorization"] == f"Bearer {API_KEY}"


def test_openai_structured_output_refused_then_json_object(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        fmt = (json.loads(request.get_data()).get("response_format") or {}).get("type")
        if fmt == "json_schema":
            return Response('{"error": {"message": "response_format json_schema is not supported"}}', status=400,
                            content_type="application/json")
        return openai_reply(posts_json(GOOD_POSTS))

    recorder = Recorder(handler)
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    writer = openai_writer(httpserver)
    posts = write(writer)
    assert [p.writer for p in posts] == ["openai"] * 3
    assert [b.get("response_format", {}).get("type") for b in recorder.bodies] == ["json_schema", "json_object"]
    # The accepted form is remembered: the next batch goes straight to it.
    write(writer, "mastodon", 1)
    assert recorder.bodies[-1]["response_format"]["type"] == "json_object"


def test_openai_plain_text_when_response_format_is_refused_entirely(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        if "response_format" in json.loads(request.get_data()):
            return Response("unsupported parameter", status=400)
        numbered = "\n".join(f"{i}. {t}" for i, t in enumerate(GOOD_POSTS, 1))
        return openai_reply(f"Here are your posts:\n{numbered}")

    recorder = Recorder(handler)
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    posts = write(openai_writer(httpserver))
    assert [p.writer for p in posts] == ["openai"] * 3
    assert len(recorder.bodies) == 3 and "response_format" not in recorder.bodies[-1]


def test_openai_429_retry_after_is_honoured(httpserver: HTTPServer) -> None:
    recorder = Recorder(
        lambda r: Response("slow down", status=429, headers={"Retry-After": "1"}),
        lambda r: openai_reply(posts_json(GOOD_POSTS)),
    )
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    posts = write(openai_writer(httpserver))
    assert [p.writer for p in posts] == ["openai"] * 3
    assert len(recorder.times) == 2
    assert recorder.times[1] - recorder.times[0] >= 0.95


def test_openai_read_timeout_retried_then_fails(httpserver: HTTPServer) -> None:
    release = threading.Event()

    def stall(request: Request) -> Response:
        release.wait(10)  # held until the client has given up
        return openai_reply(posts_json(GOOD_POSTS))

    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(stall)
    try:
        with pytest.raises(ProviderError) as failed:
            write(openai_writer(httpserver, timeout=0.5))
    finally:
        release.set()
    # One retry for a timeout (LLM_RETRIES_TIMEOUT), then the error: no offline posts.
    assert failed.value.reason == "timeout after 0.5s from openai after 2 attempts; retries ran out"
    assert failed.value.transient


def test_openai_server_errors_exhaust_retries_then_fail(httpserver: HTTPServer) -> None:
    recorder = Recorder(lambda r: Response("oops", status=503, headers={"Retry-After": "0"}))
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    with pytest.raises(ProviderError) as failed:
        write(openai_writer(httpserver))
    # Bounded: three attempts (LLM_RETRIES_SERVER=2), and on a loaded machine perhaps a
    # dropped connection, retried under its own limit.
    assert 3 <= len(recorder.bodies) <= 3 + RetryPolicy().connection
    assert failed.value.reason.startswith("HTTP 503 from openai after")
    assert failed.value.reason.endswith("retries ran out") and failed.value.transient


def test_openai_malformed_json_is_read_tolerantly(httpserver: HTTPServer) -> None:
    sloppy = "Sure!\n```json\n" + posts_json(GOOD_POSTS)[:-2] + ",]}\n```"  # trailing comma, chatter
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(lambda r: openai_reply(sloppy))
    posts = write(openai_writer(httpserver))
    assert [p.writer for p in posts] == ["openai"] * 3


def test_openai_unreadable_reply_fails(httpserver: HTTPServer) -> None:
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(
        lambda r: openai_reply("I am sorry, but I cannot write that.")
    )
    with pytest.raises(ProviderError, match="^unreadable reply from openai$") as failed:
        write(openai_writer(httpserver))
    assert not failed.value.transient


def test_openai_non_json_body_fails(httpserver: HTTPServer) -> None:
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_data("<html>gateway</html>", status=200)
    with pytest.raises(ProviderError, match="^unreadable reply from openai$"):
        write(openai_writer(httpserver), count=1)


def test_overlong_posts_are_refitted_not_cut(httpserver: HTTPServer) -> None:
    long_post = (
        "The Last Dragon of Winter by Ann Lee is a story about Mira. "
        + " ".join(f"She climbs mountain number {i} and does not stop." for i in range(1, 12))
        + f" Read it here: {LINK}\n\n#Fantasy #Dragons #FoundFamily #OldMagic #Books #Reading #Winter"
    )
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(
        lambda r: openai_reply(posts_json([long_post]))
    )
    post = write(openai_writer(httpserver), count=1)[0]
    assert post.writer == "openai"
    assert PLATFORMS["twitter"].count(long_post) > 280
    assert PLATFORMS["twitter"].fits(post.text) and post.length <= 280
    assert post.text.startswith("The Last Dragon of Winter by Ann Lee is a story about Mira.")
    assert LINK in post.text
    assert extract_hashtags(post.text) == []  # hashtags go first
    for sentence in post.text.split("\n")[0].split(". "):
        assert sentence.rstrip(".") in long_post  # whole sentences only


def test_missing_title_and_link_are_added(httpserver: HTTPServer) -> None:
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(
        lambda r: openai_reply(posts_json(["A quiet village, an old secret and one dragon. Read it tonight."]))
    )
    post = write(openai_writer(httpserver), count=1)[0]
    assert post.writer == "openai"
    assert post.text == (
        "A quiet village, an old secret and one dragon. Read it tonight.\n"
        f"The Last Dragon of Winter by Ann Lee.\nRead more: {LINK}"
    )


def test_invented_claims_and_placeholders_are_rejected(httpserver: HTTPServer) -> None:
    bad = [
        f"The bestselling The Last Dragon of Winter is here. {LINK}",
        f"A five-star read everyone loves. {LINK}",
        f"The Last Dragon of Winter won the Golden Quill award. {LINK}",
        "The Last Dragon of Winter is here! Get it at [Insert link]",
    ]
    recorder = Recorder(lambda r: openai_reply(posts_json(bad)))
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    posts = write(openai_writer(httpserver), count=2)
    assert len(recorder.bodies) == 2  # asked again once, then gave up
    assert [p.writer for p in posts] == ["offline"] * 2
    assert posts[0].note == "fallback: openai returned no usable posts"


def test_links_are_kept_out_where_not_clickable(httpserver: HTTPServer) -> None:
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(
        lambda r: openai_reply(posts_json(GOOD_POSTS))
    )
    posts = write(openai_writer(httpserver), "instagram", 2)
    assert [p.writer for p in posts] == ["openai"] * 2
    for post in posts:
        assert "https://" not in post.text and "link in bio" in post.text.lower()
        assert BOOK.title in post.text


def test_link_too_long_for_the_platform_moves_to_profile(httpserver: HTTPServer) -> None:
    book = BOOKS["long-way-round"]
    reply = f"Forty days from home, the engine dies. The Long Way Round by Sam Ortiz. {book.link} #SciFi"
    recorder = Recorder(lambda r: openai_reply(posts_json([reply])))
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    post = next(openai_writer(httpserver).write_batch(book, PLATFORMS["bluesky"], 1, seed=1, today=TODAY))
    assert post.writer == "openai" and PLATFORMS["bluesky"].fits(post.text)
    assert "https://" not in post.text and "link in profile" in post.text.lower()
    assert post.note.startswith("link left out")
    assert 'say "link in profile"' in recorder.bodies[0]["messages"][1]["content"]


def test_api_key_never_leaks(httpserver: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(
        lambda r: Response(f"invalid key {API_KEY}", status=500, headers={"Retry-After": "0"}),
        lambda r: Response(f"invalid key {API_KEY}", status=500, headers={"Retry-After": "0"}),
        lambda r: Response(f"invalid key {API_KEY}", status=401),
    )
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    writer = openai_writer(httpserver)
    with pytest.raises(ProviderError) as failed:
        write(writer)
    assert failed.value.reason == "HTTP 401 from openai: the server refused the key; check LLM_API_KEY"
    assert API_KEY not in str(failed.value)
    httpserver.clear()
    httpserver.expect_request(ANTHROPIC_PATH, method="POST").respond_with_handler(
        lambda r: anthropic_tool_reply(GOOD_POSTS)
    )
    posts = write(anthropic_writer(httpserver))
    assert recorder.headers[0]["Authorization"] == f"Bearer {API_KEY}"
    for post in posts:
        assert API_KEY not in json.dumps(post.to_dict()) and API_KEY not in repr(post)
    assert API_KEY not in repr(writer) and API_KEY not in str(vars(writer))
    assert caplog.records  # the failure was logged ...
    for record in caplog.records:
        assert API_KEY not in record.getMessage()  # ... without the key
        assert API_KEY not in repr(record.args)


# --- Anthropic Messages ----------------------------------------------------------------------


def test_anthropic_success_with_tool_output(httpserver: HTTPServer) -> None:
    recorder = Recorder(lambda r: anthropic_tool_reply(GOOD_POSTS))
    httpserver.expect_request(ANTHROPIC_PATH, method="POST").respond_with_handler(recorder)
    posts = write(anthropic_writer(httpserver))
    assert [p.writer for p in posts] == ["anthropic"] * 3
    assert posts[0].angle == "question"
    headers = recorder.headers[0]
    assert headers["X-Api-Key"] == API_KEY and headers["Anthropic-Version"] == "2023-06-01"
    body = recorder.bodies[0]
    assert body["tool_choice"] == {"type": "tool", "name": "submit_posts"}
    assert body["model"] == "test-claude" and body["max_tokens"] > 0


def test_anthropic_tool_refused_then_text(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        if "tools" in json.loads(request.get_data()):
            return Response('{"type": "error", "error": {"type": "invalid_request_error"}}', status=400)
        return anthropic_text_reply("```json\n" + posts_json(GOOD_POSTS) + "\n```")

    recorder = Recorder(handler)
    httpserver.expect_request(ANTHROPIC_PATH, method="POST").respond_with_handler(recorder)
    posts = write(anthropic_writer(httpserver))
    assert [p.writer for p in posts] == ["anthropic"] * 3
    assert ["tools" in b for b in recorder.bodies] == [True, False]


def test_anthropic_429_then_success(httpserver: HTTPServer) -> None:
    recorder = Recorder(
        lambda r: Response('{"type": "error"}', status=429, headers={"Retry-After": "1"}),
        lambda r: anthropic_tool_reply(GOOD_POSTS),
    )
    httpserver.expect_request(ANTHROPIC_PATH, method="POST").respond_with_handler(recorder)
    posts = write(anthropic_writer(httpserver))
    assert [p.writer for p in posts] == ["anthropic"] * 3
    assert recorder.times[1] - recorder.times[0] >= 0.95


def test_anthropic_timeout_fails_after_its_retry(httpserver: HTTPServer) -> None:
    release = threading.Event()

    def stall(request: Request) -> Response:
        release.wait(10)
        return anthropic_tool_reply(GOOD_POSTS)

    httpserver.expect_request(ANTHROPIC_PATH, method="POST").respond_with_handler(stall)
    try:
        with pytest.raises(ProviderError) as failed:
            write(anthropic_writer(httpserver, timeout=0.5), "bluesky", 2)
    finally:
        release.set()
    assert failed.value.reason == "timeout after 0.5s from anthropic after 2 attempts; retries ran out"


def test_unreachable_server_fails_after_bounded_retries() -> None:
    # Port 9 on loopback (discard) is closed on test machines: the connection is refused at once.
    writer = make_writer("openai", base_url="http://127.0.0.1:9/v1", api_key=API_KEY, timeout=2,
                         retries={"connection": 1})
    started = time.monotonic()
    with pytest.raises(ProviderError, match="^cannot reach openai .* after 2 attempts; retries ran out$") as failed:
        write(writer, count=1)
    assert failed.value.transient
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("status, hint", [
    (401, "the server refused the key; check LLM_API_KEY"),
    (403, "the key may not use this model; check LLM_API_KEY and LLM_MODEL"),
    (404, "no such model or endpoint; check LLM_MODEL and LLM_BASE_URL"),
    (422, "not retried"),
])
def test_permanent_refusals_fail_at_once_naming_what_to_check(
        httpserver: HTTPServer, status: int, hint: str) -> None:
    recorder = Recorder(lambda r: Response('{"error": {"message": "no"}}', status=status))
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    with pytest.raises(ProviderError) as failed:
        write(openai_writer(httpserver), "twitter", 1)
    assert len(recorder.bodies) == 1  # not retried
    assert failed.value.reason == f"HTTP {status} from openai: {hint}"
    assert not failed.value.transient and failed.value.error_type == "model"


def test_a_400_to_every_output_mode_is_permanent(httpserver: HTTPServer) -> None:
    recorder = Recorder(lambda r: Response('{"error": {"message": "invalid model"}}', status=400))
    httpserver.expect_request(OPENAI_PATH, method="POST").respond_with_handler(recorder)
    with pytest.raises(ProviderError, match="^HTTP 400 from openai: the server refused the request; check LLM_MODEL$"):
        write(openai_writer(httpserver), "twitter", 1)
    assert len(recorder.bodies) == len(("json_schema", "json_object", "text"))  # each mode once


def test_unknown_provider_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown writer provider 'gemini'"):
        make_writer("gemini")


def test_each_kind_of_failure_has_its_own_retry_limit_and_every_attempt_is_noted(
        httpserver: HTTPServer) -> None:
    from jobs.writers.llm_http import JsonPoster, RetryPolicy, attempt_notes
    recorder = Recorder(
        lambda r: Response("busy", status=429, headers={"Retry-After": "0"}),
        lambda r: Response("busy", status=429, headers={"Retry-After": "0"}),
        lambda r: Response("oops", status=502, headers={"Retry-After": "0"}),
        lambda r: Response("oops", status=503, headers={"Retry-After": "0"}),
    )
    httpserver.expect_request("/v1/x", method="POST").respond_with_handler(recorder)
    poster = JsonPoster("openai", httpserver.url_for("/v1"), {}, 2.0,
                        RetryPolicy(rate_limited=2, server=1, timeout=0, connection=0))
    notes: list[str] = []
    token = attempt_notes.set(notes.append)
    try:
        with pytest.raises(ProviderError) as failed:
            poster.post("/x", {})
    finally:
        attempt_notes.reset(token)
    # Two 429s retried (their limit), one 5xx retried (its limit), the second 5xx is final.
    assert len(recorder.bodies) == 4
    assert failed.value.reason == "HTTP 503 from openai after 4 attempts; retries ran out"
    assert [n.split(";")[0] for n in notes] == ["HTTP 429 from openai"] * 2 + ["HTTP 502 from openai"]


def test_permanent_errors_fail_at_once_and_backoff_is_jittered(httpserver: HTTPServer) -> None:
    from jobs.writers.llm_http import JsonPoster
    recorder = Recorder(lambda r: Response("no such model", status=404))
    httpserver.expect_request("/v1/x", method="POST").respond_with_handler(recorder)
    waits: list[float] = []
    poster = JsonPoster("openai", httpserver.url_for("/v1"), {}, 2.0, sleep=waits.append)
    with pytest.raises(ProviderError, match="^HTTP 404 from openai: no such model"):
        poster.post("/x", {})
    assert len(recorder.bodies) == 1 and waits == []
    for attempt in (1, 2, 3):
        poster._wait(attempt, None, "test")
    assert 0.5 <= waits[0] <= 1.5 and 1.0 <= waits[1] <= 3.0 and 2.0 <= waits[2] <= 6.0
