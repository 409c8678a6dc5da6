"""Prometheus metrics, in a registry of their own (served on ``--metrics-port``)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

REVIEWS = Counter(
    "modelsec_webhook_reviews_total",
    "AdmissionReviews answered, by decision (allowed, denied) and the reason class "
    "(no-models, unchanged, exempt, not-checked, judged, not-ready, invalid-request, "
    "internal-error).",
    ["decision", "reason"],
    registry=REGISTRY,
)
REVIEW_SECONDS = Histogram(
    "modelsec_webhook_review_duration_seconds",
    "Server-side time to answer one AdmissionReview (body read to response built), by "
    "whether the object referenced models.",
    ["models"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
JUDGEMENTS = Counter(
    "modelsec_webhook_judgements_total",
    "Model references judged against a security group, by status (ALLOWED, BLOCKED, "
    "PENDING, ERROR) and the group's enforcement mode; counted per decision computed "
    "(answers from the decision cache are not counted again).",
    ["status", "mode"],
    registry=REGISTRY,
)
DECISION_CACHE = Counter(
    "modelsec_webhook_decision_cache_total",
    "Decision cache lookups, by result (hit, miss).",
    ["result"],
    registry=REGISTRY,
)
SCANS_REQUESTED = Counter(
    "modelsec_webhook_modelscans_requested_total",
    "ModelScans the webhook asked for, by result (created, exists, failed, dropped).",
    ["result"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "modelsec_webhook_events_total",
    "Kubernetes Events posted, by result (posted, failed, dropped).",
    ["result"],
    registry=REGISTRY,
)
WATCH_EVENTS = Counter(
    "modelsec_webhook_watch_events_total",
    "Watch events applied to the view, by resource and type.",
    ["resource", "type"],
    registry=REGISTRY,
)
RELISTS = Counter(
    "modelsec_webhook_relists_total",
    "Lists after a watch expired (410 Gone), by resource.",
    ["resource"],
    registry=REGISTRY,
)
WATCH_ERRORS = Counter(
    "modelsec_webhook_watch_errors_total",
    "List/watch failures (retried with backoff), by resource.",
    ["resource"],
    registry=REGISTRY,
)
VIEW_OBJECTS = Gauge(
    "modelsec_webhook_view_objects",
    "Objects in the in-memory view, by resource.",
    ["resource"],
    registry=REGISTRY,
)
READY = Gauge(
    "modelsec_webhook_ready",
    "1 while the view is synced and no older than --max-staleness.",
    registry=REGISTRY,
)
VIEW_AGE = Gauge(
    "modelsec_webhook_view_age_seconds",
    "How old the in-memory view is: since the API server last answered the heartbeat or a "
    "resource stopped being followed, whichever is older (-1 before the first answer).",
    registry=REGISTRY,
)
CONFIGMAP_READS = Counter(
    "modelsec_webhook_configmap_reads_total",
    "ConfigMaps read to resolve model names, by result (read, missing, forbidden, failed).",
    ["result"],
    registry=REGISTRY,
)
TLS_RELOADS = Counter(
    "modelsec_webhook_tls_reloads_total",
    "Serving certificate loads, by result (loaded, failed).",
    ["result"],
    registry=REGISTRY,
)

FIRST_DEPLOY = Counter(
    "modelsec_webhook_first_deploy_waits_total",
    "Requests denied for want of a verdict that could wait for it, by result: admitted or "
    "denied (the verdict arrived), timeout (the budget ran out), capped (too many waiting), "
    "not-expected (the scan would not finish in time), no-budget (no timeout on the URL).",
    ["result"],
    registry=REGISTRY,
)
FIRST_DEPLOY_WAITING = Gauge(
    "modelsec_webhook_first_deploy_waiting",
    "Requests waiting for a verdict now.",
    registry=REGISTRY,
)
MUTATIONS = Counter(
    "modelsec_webhook_mutations_total",
    "Mutating reviews answered, by what the patch did: pinned, verifiers, pinned+verifiers, "
    "none, not-needed (no group pins or verifies), internal-error.",
    ["result"],
    registry=REGISTRY,
)
PINS = Counter(
    "modelsec_webhook_pins_total",
    "References rewritten to a revision, by source scheme.",
    ["scheme"],
    registry=REGISTRY,
)

# Children bound once: label lookups stay off the admission hot path.
OBSERVE_NO_MODELS = REVIEW_SECONDS.labels("none").observe
OBSERVE_MODELS = REVIEW_SECONDS.labels("some").observe
CACHE_HIT = DECISION_CACHE.labels("hit").inc
CACHE_MISS = DECISION_CACHE.labels("miss").inc


_judgement_children: dict[tuple[str, str], Counter] = {}


def count_judgement(status: str, mode: str) -> None:
    child = _judgement_children.get((status, mode))
    if child is None:
        child = _judgement_children[(status, mode)] = JUDGEMENTS.labels(status, mode)
    child.inc()
