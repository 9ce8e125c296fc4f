"""Offline writer speed: posts per second written directly, inside a queued task, and the CPU of a small request.

    .venv/bin/python bench/bench_writer.py [--count 25] [--requests 100] [--repeat 1]

Three books: a plain one, a CJK one in a playful tone (emoji), and one whose link is a
152-character URL with a query string (X and Mastodon count it as 23, Bluesky and Threads
in full). For each:
- direct: one batch as the engine writes it (8 platforms x --count, earlier posts passed as
  ``avoid``), CPU time of this process, the book seen for the first time (its analysis included);
- queued: a content-generation task of the same size queued over the API and run by one
  process worker (huey_worker.py --workers 1) on its own redis-server, timed from the task's
  start to its end as recorded (writing, storing and progress reports included), and per CPU
  second of the worker's processes (what a shared machine's waiting for a core leaves out),
  less what the idle worker spends in the same time.
Then a 3-post synchronous request (POST /api/generate-posts, one post on each of three
platforms): CPU of the web process per request, less that of a plain authenticated GET
(GET /api/me), from /proc/<pid>/stat over --requests of each.
Distinct posts per batch are reported too (a repeat would show as fewer than the batch size).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.platforms import PLATFORMS  # noqa: E402
from jobs.writers import Book, make_writer  # noqa: E402
from tests.support import RedisServer, Stack, wait_until  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "books.json"
LONG_URL = ("https://www.example-bookstore.com/books/the-long-way-round-a-novel/9781234567890"
            "?utm_source=social&utm_medium=post&utm_campaign=spring_launch&ref=abc123")
SYNC_PLATFORMS = ["twitter", "bluesky", "threads"]


def bench_books() -> dict[str, dict]:
    rows = {row["id"]: row for row in json.loads(FIXTURE.read_text(encoding="utf-8"))["books"]}
    fields = {f.name for f in dataclasses.fields(Book)}
    plain = {k: v for k, v in rows["last-dragon"].items() if k in fields}
    cjk = {k: v for k, v in rows["hoshifuru"].items() if k in fields} | {"tone": "playful"}
    return {"plain": plain, "cjk/emoji": cjk, "long URL": plain | {"link": LONG_URL}}


def fresh(book: dict, tag: str) -> dict:
    """The book under a title never seen by this process or worker, so its analysis is paid again."""
    return book | {"title": f"{book['title']} {tag}"}


def direct(book: dict, count: int) -> tuple[float, int, int]:
    """(posts/s, posts, distinct) for one batch written in this process."""
    writer = make_writer("offline")
    book_ = Book.from_dict(book)
    produced: list[str] = []
    started = time.process_time()
    for platform in PLATFORMS.values():
        for post in writer.write_batch(book_, platform, count, seed=1, today=dt.date.today(),
                                       avoid=tuple(produced)):
            produced.append(post.text)
    elapsed = time.process_time() - started
    return len(produced) / elapsed, len(produced), len(set(produced))


def idle_cpu_rate(stack: Stack, seconds: float = 3.0) -> float:
    """CPU seconds per second the idle worker spends (heartbeats, polling), to take off the task's."""
    worker = stack.workers[0].pid
    before, started = cpu_seconds(worker, tree=True), time.monotonic()
    time.sleep(seconds)  # the measurement itself: nothing to wait for
    return (cpu_seconds(worker, tree=True) - before) / (time.monotonic() - started)


def queued(stack: Stack, book: dict, count: int, idle: float = 0.0) -> tuple[float, float, int, int]:
    """(posts/s by the task's record, posts per CPU second of the worker, posts, distinct) of one
    queued content-generation task. On a shared machine the first can wait for a core; the
    second cannot. ``idle`` (CPU seconds per second of an idle worker) is taken off the second."""
    worker = stack.workers[0].pid
    before, started = cpu_seconds(worker, tree=True), time.monotonic()
    task_id = stack.queue(platforms=list(PLATFORMS), count_per_platform=count, book=book)
    record = stack.wait_status(task_id, {"SUCCESS", "FAILURE"}, timeout=300)
    cpu = cpu_seconds(worker, tree=True) - before - idle * (time.monotonic() - started)
    assert record["status"] == "SUCCESS", record
    started = dt.datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
    finished = dt.datetime.fromisoformat(record["finished_at"].replace("Z", "+00:00"))
    texts = [p["text"] for p in record["result"]["posts"]]
    return len(texts) / (finished - started).total_seconds(), len(texts) / cpu, len(texts), len(set(texts))


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """CPU time of a process's threads (and, with ``tree``, of its descendants: Huey's process
    workers are children of the consumer), in nanoseconds from /proc/<pid>/task/*/schedstat.

    /proc/<pid>/stat counts in clock ticks (10 ms), a tenth of a 200-post task; schedstat
    counts nanoseconds, but only for live threads: the worker's threads live as long as it does.
    """
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0]) / 1e9
            children = (task / "children").read_text().split() if tree else []
        except FileNotFoundError:  # a thread that ended while being read
            continue
        for child in children:
            total += cpu_seconds(int(child), tree=True)
    return total


def sync_cpu_ms(stack: Stack, requests: int) -> tuple[float, float]:
    """(CPU ms per 3-post request, CPU ms per plain GET) of the web process."""
    book_id = stack.add_book(None, title="The Glass Orchard", genre="Fantasy", tone="warm")["id"]
    body = {"platforms": SYNC_PLATFORMS, "count_per_platform": 1, "book_id": book_id}

    def generate() -> None:
        response = stack.client.post("/api/generate-posts", json=body)
        assert response.status_code == 200 and len(response.json()["posts"]) == 3, response.text

    def plain_get() -> None:
        assert stack.client.get("/api/me").status_code == 200

    per_request = {}
    for name, call in (("get", plain_get), ("generate", generate)):
        for _ in range(max(10, requests // 5)):  # warm-up: connections, caches, the book's analysis
            call()
        before = cpu_seconds(stack.web.pid)
        for _ in range(requests):
            call()
        per_request[name] = (cpu_seconds(stack.web.pid) - before) * 1000 / requests
    return per_request["generate"] - per_request["get"], per_request["get"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=25, help="posts per platform per batch (default 25)")
    parser.add_argument("--requests", type=int, default=100, help="3-post requests measured (default 100)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of everything (default 1)")
    args = parser.parse_args()
    books = bench_books()
    make_writer("offline")  # imports are a one-off cost of the process, not of a batch

    with tempfile.TemporaryDirectory(prefix="bench-writer-") as tmp:
        redis = RedisServer(Path(tmp))
        stack = Stack("bench", Path(tmp) / "stack",
                      {"REDIS_URL": redis.url, "LOG_LEVEL": "WARNING", "GENERATION_RATE_LIMIT": "100000"},
                      workers=[["--workers", "1", "--worker-type", "process", "--no-periodic"]])
        try:
            stack.start()
            wait_until(lambda: stack.capacity() >= 1, 30, "the worker to report in")
            for name, book in books.items():  # the worker's imports, first task and one-off tables
                queued(stack, fresh(book, "warm-up"), 1)
            idle = idle_cpu_rate(stack)
            print(f"idle worker: {idle * 1000:.1f} ms CPU per second (taken off the queued figures)")
            for run in range(1, args.repeat + 1):
                for name, book in books.items():
                    tag = f"(run {run})"
                    rate, made, distinct = direct(fresh(book, tag), args.count)
                    print(f"run {run} {name:10} direct: {rate:7.0f} posts/s ({distinct}/{made} distinct)")
                    rate, per_cpu, made, distinct = queued(stack, fresh(book, tag), args.count, idle)
                    print(f"run {run} {name:10} queued: {rate:7.0f} posts/s, {per_cpu:7.0f} posts per CPU "
                          f"second ({distinct}/{made} distinct, stored, one process worker)")
                extra, plain = sync_cpu_ms(stack, args.requests)
                print(f"run {run} 3-post request: {extra:.2f} ms CPU beyond a plain GET ({plain:.2f} ms)")
        finally:
            stack.stop()
            redis.stop()


if __name__ == "__main__":
    main()
