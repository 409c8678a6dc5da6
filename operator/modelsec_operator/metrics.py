"""Prometheus metrics, in a registry of their own (served by ``--metrics-port``)."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

VERDICTS = Counter(
    "modelsec_scans_total",
    "Verdicts recorded on ModelScans, by outcome (ALLOWED, BLOCKED, ERROR).",
    ["outcome"],
    registry=REGISTRY,
)
SCAN_SECONDS = Histogram(
    "modelsec_scan_duration_seconds",
    "Wall time of one engine run (reading and parsing a model), cache hits excluded.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
BYTES_SCANNED = Counter(
    "modelsec_bytes_scanned_total", "Bytes of model files read by the engine.", registry=REGISTRY
)
QUEUE_DEPTH = Gauge(
    "modelsec_scan_queue_depth",
    "Scans waiting for a slot (--max-concurrent-scans; in scan mode job, --max-concurrent-scan-jobs).",
    registry=REGISTRY,
)
IN_PROGRESS = Gauge(
    "modelsec_scans_in_progress", "Engine runs (in scan mode job: scan Jobs) in progress.", registry=REGISTRY
)
ERRORS = Counter(
    "modelsec_scan_errors_total",
    "Scans that could not produce a verdict or had to be retried, by reason.",
    ["reason"],
    registry=REGISTRY,
)
CACHE_HITS = Counter(
    "modelsec_report_cache_hits_total",
    "Evaluations served from a cached report of unchanged content (no re-read).",
    registry=REGISTRY,
)
DEDUPLICATED = Counter(
    "modelsec_scans_deduplicated_total",
    "Requests that joined a scan of the same model already in flight.",
    registry=REGISTRY,
)


def serve(port: int, address: str) -> WSGIServer | None:
    """Start the /metrics HTTP server in a daemon thread; returns the server to shut down."""
    if not port:
        return None
    server, _thread = start_http_server(port, addr=address, registry=REGISTRY)
    return server
