"""Offline writer throughput: posts per second over the fixture books and every platform.

Run from the repository root:  .venv/bin/python bench/bench_writer.py [--seeds N] [--count N]
Each batch is written the way the engine writes it: platform after platform,
with the texts already produced passed on as ``avoid``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.platforms import PLATFORMS  # noqa: E402
from jobs.writers import Book, make_writer  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "books.json"


def run(books: list[Book], today: dt.date, seeds: range, count: int) -> int:
    writer = make_writer("offline")
    made = 0
    for seed in seeds:
        for book in books:
            produced: list[str] = []
            for platform in PLATFORMS.values():
                for post in writer.write_batch(book, platform, count, seed=seed, today=today, avoid=tuple(produced)):
                    produced.append(post.text)
                    made += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per book (default 5)")
    parser.add_argument("--count", type=int, default=3, help="posts per platform per batch (default 3)")
    args = parser.parse_args()

    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    books = [Book.from_dict(row) for row in data["books"]]
    today = dt.date.fromisoformat(data["today"])

    # Warm-up: imports, keyphrase model set-up and per-book analysis are one-off costs.
    run(books[:1], today, range(1000, 1001), 1)

    started = time.perf_counter()
    made = run(books, today, range(1, args.seeds + 1), args.count)
    elapsed = time.perf_counter() - started
    print(
        f"offline writer: {made} posts ({len(books)} books x {len(PLATFORMS)} platforms x "
        f"{args.seeds} seeds x {args.count}) in {elapsed:.2f} s = {made / elapsed:.0f} posts/s"
    )


if __name__ == "__main__":
    main()
