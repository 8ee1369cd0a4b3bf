"""Prometheus metrics shared by every service (one process, one registry).

Metric objects are declared once at import (they are counters, not clients);
the ``service`` label tells the services apart when scraped together.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "corpus_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "corpus_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter("corpus_events_published_total", "Events confirmed by the broker", ["type"])
EVENTS_CONSUMED = Counter(
    "corpus_events_consumed_total", "Events handled, by outcome (ok, parked_invalid, parked_failed, requeued_outage)", ["type", "outcome"]
)
OUTBOX_RELAYED = Counter("corpus_outbox_relayed_total", "Outbox entries relayed to the bus", ["type"])


def render_latest() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
