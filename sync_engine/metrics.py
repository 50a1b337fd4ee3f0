"""Prometheus metrics (served at ``GET /metrics``).

One registry per process so tests can build several apps side by side.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connectors.base import CallObserver

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics(CallObserver):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "crmsync_records_synced", "Records written to a system, by flow, system and operation.",
            ["flow", "system", "operation"], registry=r,
        )
        self.api_calls = Counter(
            "crmsync_api_calls", "API calls made, by system, endpoint and status.", ["system", "endpoint", "status"], registry=r
        )
        self.api_latency = Histogram(
            "crmsync_api_call_seconds", "API call latency, by system and endpoint.", ["system", "endpoint"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge("crmsync_queue_jobs", "Jobs in the queue, by status.", ["status"], registry=r)
        self.queue_oldest_age = Gauge(
            "crmsync_queue_oldest_job_age_seconds", "Age of the oldest queued job.", registry=r
        )
        self.dead_letters = Gauge("crmsync_dead_letters_open", "Open dead letters, by flow.", ["flow"], registry=r)
        self.webhooks = Counter(
            "crmsync_webhook_deliveries", "Webhook deliveries, by system and result.", ["system", "result"], registry=r
        )
        self.webhook_ack = Histogram(
            "crmsync_webhook_ack_seconds", "Time from request to acknowledgement.", ["system"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.conflicts = Counter(
            "crmsync_conflicts", "Field conflicts, by entity and policy.", ["entity", "policy"], registry=r
        )
        self.runs = Counter("crmsync_runs", "Flow runs, by flow, kind and result.", ["flow", "kind", "result"], registry=r)

    def on_call(self, system: str, endpoint: str, status: str, seconds: float) -> None:
        self.api_calls.labels(system, endpoint, status).inc()
        self.api_latency.labels(system, endpoint).observe(seconds)
