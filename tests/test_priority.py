"""Interactive work overtakes bulk work when the workers are busy."""
from __future__ import annotations

import datetime as dt

from tests.support import wait_until


def parse_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_an_authors_task_starts_within_one_task_length_of_a_daily_operations_backlog(fresh_stack):
    stack = fresh_stack("redis")
    stack.worker_args = [["--workers", "2", "--worker-type", "process"]]
    stack.start()
    # Daily operations draft posts for each recently active author: with these books on the
    # slow model each run takes a few tenths of a second per post.
    for i in range(3):
        seeded = stack.queue(user_id=f"writer{i}@example.com", platforms=["twitter", "threads"],
                             count_per_platform=1, book={"title": f"SLOW seed {i}"})
        stack.wait_status(seeded, "SUCCESS")
    # The author's account first: making it is a process of its own, slow on a busy machine,
    # and the backlog must still be there when the author's task is queued.
    author = stack.client_for(stack.create_user("waiting-author@example.com", "author"))
    daily = []
    for _ in range(8):
        response = stack.client.post("/api/autonomous/execute-daily")
        assert response.status_code == 202
        daily.append(response.json()["task_id"])
    wait_until(lambda: sum(stack.task(t)["status"] == "STARTED" for t in daily) == 2, 20,
               "both workers busy with daily operations")

    response = author.post("/api/generate-posts", json={"platforms": ["bluesky"], "async": True,
                                                        "book": {"title": "Quick one"}})
    assert response.status_code == 202
    mine = stack.wait_status(response.json()["task_id"], "SUCCESS", timeout=60)
    runs = [stack.wait_status(t, "SUCCESS", timeout=120) for t in daily]

    assert mine["priority"] > runs[0]["priority"] == 0
    waited = (parse_iso(mine["started_at"]) - parse_iso(mine["enqueued_at"])).total_seconds()
    task_length = max((parse_iso(r["finished_at"]) - parse_iso(r["started_at"])).total_seconds()
                      for r in runs)
    still_waiting = [r for r in runs if parse_iso(r["started_at"]) > parse_iso(mine["started_at"])]
    print(f"author's task waited {waited:.2f}s; a daily operations run takes up to "
          f"{task_length:.2f}s; {len(still_waiting)} of {len(runs)} runs started after it")
    assert waited <= task_length + 0.5  # + the claim and heartbeat overheads of a busy machine
    assert still_waiting  # it overtook the backlog
