"""Prometheus metrics: task counts by type and status, run durations, queue depth."""
from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from jobs import queries
from jobs.events import Event, EventBus
from jobs.models import FINAL_STATUSES, from_iso

log = logging.getLogger("webapp.metrics")

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _StoreCollector:
    """Read at scrape time from the system of record, so every web process agrees."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def collect(self):
        summary, counts = queries.queue_summary_and_counts(self.runtime.db,
                                                           now=self.runtime.clock.now())
        tasks = GaugeMetricFamily("bma_tasks", "Recorded tasks by type and status",
                                  labels=["type", "status"])
        for task_type, by_status in counts.items():
            for status, n in by_status.items():
                tasks.add_metric([task_type, status], n)
        yield tasks
        depth = GaugeMetricFamily("bma_queue_depth", "Messages waiting in the queue",
                                  labels=["backend"])
        depth.add_metric([self.runtime.mode], self.runtime.pending_count())
        yield depth
        yield GaugeMetricFamily("bma_oldest_waiting_seconds", "Age of the oldest waiting task",
                                value=summary["oldest_waiting_seconds"] or 0)


class Metrics:
    def __init__(self, runtime) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StoreCollector(runtime))
        self.finished = Counter("bma_tasks_finished", "Tasks that reached a final state",
                                ["type", "status"], registry=self.registry)
        self.duration = Histogram("bma_task_duration_seconds", "Run time of finished tasks",
                                  ["type", "status"], buckets=DURATION_BUCKETS,
                                  registry=self.registry)

    def render(self) -> bytes:
        """Blocking (reads the database): call from a thread."""
        return generate_latest(self.registry)

    async def follow(self, bus: EventBus) -> None:
        """Observe durations from the live event stream (every process sees every event)."""
        while not bus.closing:  # a lagging subscription ends; start another
            async for item in bus.subscribe(counted=False):
                if isinstance(item, Event) and item.data.get("kind") == "task":
                    self.observe(item.data["task"])

    def observe(self, task: dict) -> None:
        if task["status"] not in FINAL_STATUSES or not task["started_at"] or not task["finished_at"]:
            return
        seconds = (from_iso(task["finished_at"]) - from_iso(task["started_at"])).total_seconds()
        self.finished.labels(task["type"], task["status"]).inc()
        self.duration.labels(task["type"], task["status"]).observe(max(seconds, 0.0))

