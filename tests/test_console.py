"""The operator's console: `python -m webapp inspect`, workers and draining, schedules."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time

from tests.support import PYTHON, wait_until

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def inspect(stack, *args: str) -> subprocess.CompletedProcess:
    return inspect_each(stack, args)[0]


def inspect_each(stack, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Run `inspect` commands side by side (each is a process that mostly starts up and reads
    the database); their results in the order given."""
    procs = [subprocess.Popen([PYTHON, "-m", "webapp", "inspect", *args], cwd=stack.dir,
                              env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for args in commands]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


# -- python -m webapp inspect --

def test_inspect_reads_what_the_api_shows_without_a_server(stack):
    task_id = stack.queue(platforms=["twitter"], count_per_platform=1)
    stack.wait_status(task_id, "SUCCESS")

    api_ids = {w["id"] for w in stack.client.get("/api/workers").json()["workers"]}
    (shown, shown_json, workers, workers_json, stats_json, stats_text, active, active_json,
     schedules) = inspect_each(
        stack, ("task", task_id), ("task", task_id, "--json"), ("workers",), ("workers", "--json"),
        ("stats", "--json"), ("stats",), ("active",), ("active", "--json"), ("schedules",))
    assert shown.returncode == 0, shown.stderr
    assert f"task_id: {task_id}" in shown.stdout and "status: SUCCESS" in shown.stdout
    assert re.search(r"^AT\s+STATUS\s+ATTEMPT", shown.stdout, re.M)  # the timeline table
    as_json = json.loads(shown_json.stdout)
    assert as_json["status"] == stack.task(task_id)["status"] == "SUCCESS"
    assert [s["status"] for s in as_json["timeline"]] == ["PENDING", "STARTED", "SUCCESS"]

    assert workers.returncode == 0 and re.search(r"^WORKER\s+STATE", workers.stdout, re.M)
    cli_ids = {w["id"] for w in json.loads(workers_json.stdout)["workers"]}
    assert api_ids and cli_ids == api_ids

    stats = json.loads(stats_json.stdout)
    api_stats = stack.client.get("/api/tasks/stats").json()
    assert stats["backend"] == api_stats["backend"] == stack.mode
    assert stats["tasks"]["content_generation"]["SUCCESS"] >= 1
    assert "TYPE" in stats_text.stdout

    assert active.returncode == 0 and "waiting or running" in active.stdout
    assert json.loads(active_json.stdout)["count"] == 0

    assert "daily_operations" in schedules.stdout and "weekly_report" in schedules.stdout


def test_inspect_refuses_bad_arguments(stack):
    missing, no_id, extra, unknown = inspect_each(
        stack, ("task", "no-such-task"), ("task",), ("workers", "extra"), ("everything",))
    assert missing.returncode == 1 and "no task has id" in missing.stderr
    assert no_id.returncode == 2
    assert extra.returncode == 2
    assert unknown.returncode == 2


# -- workers --

def test_workers_api_shows_each_worker(stack):
    body = stack.client.get("/api/workers").json()
    running = [w for w in body["workers"] if w["state"] == "running"]
    assert running
    for w in running:
        assert {"id", "host", "pid", "kind", "concurrency", "started_at", "last_heartbeat",
                "tasks_run", "current_tasks", "state", "draining"} <= w.keys()
        assert ISO.match(w["started_at"]) and ISO.match(w["last_heartbeat"])
        assert w["kind"] == ("thread" if stack.mode == "embedded" else "process")


def test_drain_is_for_managers_and_known_workers(stack):
    author = stack.client_for(stack.create_user("drain-author@example.com", "author"))
    worker_id = stack.client.get("/api/workers").json()["workers"][0]["id"]
    assert author.post(f"/api/workers/{worker_id}/drain").status_code == 403
    mine = author.get("/api/workers").json()["workers"]
    assert all(isinstance(w["current_tasks"], int) for w in mine)  # counts, not task ids
    missing = stack.client.post("/api/workers/nobody:1/drain")
    assert missing.status_code == 404 and missing.json()["error"] == "worker_not_found"


def test_a_drained_worker_finishes_its_task_and_takes_no_new_ones(fresh_stack, fake_llm):
    stack = fresh_stack("redis").start()
    wait_until(lambda: len(_workers(stack)) == 3, 20, "three worker processes")
    busy_id = stack.queue(platforms=["twitter"], count_per_platform=1, book={"title": "STALL drain"})
    stack.wait_status(busy_id, "STARTED")
    busy = stack.task(busy_id)["worker"]
    idle = next(w for w in _workers(stack) if w != busy)
    for worker_id in (busy, idle):
        response = stack.client.post(f"/api/workers/{worker_id}/drain")
        assert response.status_code == 200 and response.json()["status"] == "draining"

    # The busy one keeps its task (stopping); the idle one has obeyed (stopped).
    wait_until(lambda: _workers(stack)[idle]["state"] == "stopped", 10, "the idle worker to stop")
    assert _workers(stack)[busy]["state"] == "stopping"
    # Counts as of a heartbeat that has seen the busy worker's claim.
    wait_until(lambda: _workers(stack)[busy]["tasks_run"] == 1, 10, "the busy worker's count")
    before = {w: _workers(stack)[w]["tasks_run"] for w in (busy, idle)}
    quick = [stack.queue(platforms=["bluesky"], count_per_platform=1) for _ in range(6)]
    done = [stack.wait_status(t, "SUCCESS") for t in quick]
    assert {d["worker"] for d in done}.isdisjoint({busy, idle})

    fake_llm.release_stalled()
    stack.wait_status(busy_id, "SUCCESS")
    wait_until(lambda: _workers(stack)[busy]["state"] == "stopped", 10, "the busy worker to stop")
    after = _workers(stack)
    assert {w: after[w]["tasks_run"] for w in (busy, idle)} == before

    assert stack.client.post(f"/api/workers/{idle}/undrain").status_code == 200
    wait_until(lambda: _workers(stack)[idle]["state"] == "running", 10, "the worker to resume")
    audit = stack.client.get("/api/audit").json()
    actions = [(e["action"], e["target"]) for e in audit["entries"]]
    assert ("worker.drain", busy) in actions and ("worker.undrain", idle) in actions


def _workers(stack) -> dict[str, dict]:
    return {w["id"]: w for w in stack.client.get("/api/workers").json()["workers"]
            if w["state"] != "lost"}


# -- schedules --

def test_schedules_list_next_and_last_runs_and_run_now(stack):
    body = stack.client.get("/api/schedules").json()
    by_name = {s["name"]: s for s in body["schedules"]}
    assert {"daily_operations", "weekly_report"} <= by_name.keys()
    weekly = by_name["weekly_report"]
    assert ISO.match(weekly["next_run"]) and weekly["next_run"].endswith("T07:00:00Z")
    assert weekly["enabled"] is True

    response = stack.client.post("/api/schedules/weekly_report/run")
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    stack.wait_status(task_id, "SUCCESS", timeout=30)
    weekly = {s["name"]: s for s in stack.client.get("/api/schedules").json()["schedules"]}["weekly_report"]
    assert weekly["last_run"]["task_id"] == task_id and weekly["last_run"]["status"] == "SUCCESS"

    key = {"Idempotency-Key": f"weekly-{time.monotonic_ns()}"}
    once = stack.client.post("/api/schedules/weekly_report/run", headers=key).json()["task_id"]
    assert stack.client.post("/api/schedules/weekly_report/run", headers=key).json()["task_id"] == once
    assert stack.client.post("/api/schedules/nothing/run").status_code == 404
    author = stack.client_for(stack.create_user("schedule-author@example.com", "author"))
    assert author.post("/api/schedules/weekly_report/run").status_code == 403


def test_schedules_list_a_campaigns_dated_work_each_author_their_own(stack):
    email = f"campaigner-{time.monotonic_ns()}@example.com"
    me = stack.client_for(stack.create_user(email, "author"))
    launch = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date()
    book = me.post("/api/books", json={"title": "Tidewater", "launch_date": launch.isoformat(),
                                       "link": "https://ex.com/t"}).json()
    queued = me.post(f"/api/books/{book['id']}/campaign", json={"platforms": ["twitter"]})
    assert queued.status_code == 202, queued.text
    stack.wait_status(queued.json()["task_id"], "SUCCESS", timeout=60)
    dated = me.get("/api/schedules").json()["dated_work"]
    assert dated and {d["owner"] for d in dated} == {email}
    assert [d["scheduled_at"] for d in dated] == sorted(d["scheduled_at"] for d in dated)
    assert any(d["label"] == "Launch day" for d in dated)
    assert any(d["owner"] == email for d in stack.client.get("/api/schedules").json()["dated_work"]) \
        or len(stack.client.get("/api/schedules").json()["dated_work"]) == 50
    assert "dated work" in inspect(stack, "schedules").stdout
