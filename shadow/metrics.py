"""Prometheus metrics of the service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "switchover_requests_total",
    "Client requests answered by the proxy",
    ["use_case", "endpoint", "status"],
)
OVERHEAD = Histogram(
    "switchover_overhead_seconds",
    "Time spent in Switchover itself per request (excluding the upstream)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
)
SHADOW_ENQUEUED = Counter(
    "switchover_shadow_enqueued_total", "Shadow jobs accepted by the broker", ["use_case"]
)
SHADOW_DROPPED = Counter(
    "switchover_shadow_dropped_total",
    "Shadow jobs dropped before the broker accepted them",
    ["use_case", "reason"],
)
# Under `switchover serve --workers N` each process writes its own values (Prometheus
# multiprocess mode); a gauge says how they add up.
SHADOW_BUFFERED = Gauge(
    "switchover_shadow_buffered", "Shadow jobs waiting for the broker", multiprocess_mode="livesum"
)
LIVE_OUTCOMES = Counter(
    "switchover_live_candidate_total",
    "Live requests routed to the candidate, by outcome (candidate, fallback_<reason>, broken)",
    ["use_case", "outcome"],
)
LIVE_PERCENT = Gauge(
    "switchover_live_percent",
    "Share of live traffic answered by the candidate",
    ["use_case"],
    multiprocess_mode="mostrecent",
)
SHADOW_SKIPPED = Counter(
    "switchover_shadow_skipped_total",
    "Sampled requests not mirrored on purpose: the candidate cannot be asked the same thing "
    "(`untranslatable`, or a Responses turn whose history never passed through Switchover) "
    "or would fetch client-chosen URLs (`urls`)",
    ["use_case", "reason"],
)
SHADOW_FAILED = Counter(
    "switchover_shadow_failed_total",
    "Accepted shadow jobs that could not be stored, by kind (also in the dead_letters table)",
    ["use_case", "kind"],
)
CANDIDATE_ERRORS = Counter(
    "switchover_candidate_errors_total",
    "Mirrored requests the candidate failed (error, timeout, unparseable answer), by kind",
    ["use_case", "candidate", "kind"],
)
