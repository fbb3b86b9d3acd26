"""Prometheus metrics, in a registry of pgpager's own (served at ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

handles_active = Gauge(
    "pgpager_handles_active", "Resumable-query handles active on this instance.", registry=REGISTRY
)
handle_events = Counter(
    "pgpager_handle_events",
    "Resumable-query handle lifecycle events.",
    ["event"],  # started, stopped, exhausted, expired, rehydrated
    registry=REGISTRY,
)
# Fine below 5 ms, where a next on the hot path falls (the bench reads its p50 from these).
NEXT_BUCKETS = (
    *(0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0008, 0.001, 0.0015, 0.002, 0.003),
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
next_latency = Histogram(
    "pgpager_next_latency_seconds",
    "Time to serve one resumable-query next() call.",
    buckets=NEXT_BUCKETS,
    registry=REGISTRY,
)
delivery_record_pages = Histogram(
    "pgpager_delivery_record_pages",
    "Pages of resumable queries recorded as delivered by one statement and commit (above 1: "
    "nexts served at the same moment shared a commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
sweeps = Counter(
    "pgpager_sweeper_actions", "What the sweeper closed or deleted.", ["action"], registry=REGISTRY
)
stored_queries = Counter(
    "pgpager_stored_queries", "Stored queries run, by final state.", ["state"], registry=REGISTRY
)
