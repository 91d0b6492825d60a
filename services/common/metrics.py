"""Prometheus metrics shared by the gRPC services (RED per method, model, feature store)."""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1.0,
    2.0,
    5.0,
)

GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC, by service and method.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
MODEL_INFO = Info("credit_model", "The model version being served.")
MODEL_LOADED_AT = Gauge(
    "credit_model_loaded_timestamp_seconds", "When the served model was loaded (Unix time)."
)
MODEL_RELOADS = Counter("credit_model_reloads_total", "Model (re)loads by outcome.", ["outcome"])
SHADOW_SCORES = Counter(
    "credit_challenger_scores_total",
    "Scores made in shadow by the challenger, by outcome: agree / disagree (with the "
    "champion's decision) or failed (the champion's answer went out without it).",
    ["outcome"],
)
FEATURE_READ_LATENCY = Histogram(
    "credit_feature_store_read_seconds",
    "Online feature-store read latency for one client.",
    buckets=LATENCY_BUCKETS,
)
FEATURE_READ_ERRORS = Counter(
    "credit_feature_store_errors_total", "Feature-store reads that failed.", ["reason"]
)


def hide_feast_server_metrics() -> None:
    """Takes Feast's own metrics out of the default registry. Importing Feast registers its
    feature server's (request counts, CPU gauges, freshness...); these services are not that
    server, and on their /metrics those series would stay at zero and mislead."""
    import feast.metrics

    for value in vars(feast.metrics).values():
        if isinstance(value, MetricWrapperBase):
            with contextlib.suppress(KeyError):  # already taken out
                REGISTRY.unregister(value)


# Completeness of the online store (serving_core.feature_store.completeness), by feature service
# ("views" is the materialisation run itself): what readiness and the alerts look at.
FEATURE_STORE_COMPLETE = Gauge(
    "credit_feature_store_complete",
    "1 when the online store holds a complete materialisation for this feature service (its "
    "marker is there and the store still holds the run's probe clients), else 0.",
    ["feature_service"],
)
FEATURE_STORE_MARKER_TIME = Gauge(
    "credit_feature_store_marker_timestamp_seconds",
    "When the materialisation described by the feature service's marker completed (Unix "
    "time); absent while there is no marker.",
    ["feature_service"],
)
FEATURE_STORE_MARKER_CLIENTS = Gauge(
    "credit_feature_store_marker_clients",
    "Clients loaded by the materialisation the feature service's marker describes.",
    ["feature_service"],
)
FEATURE_STORE_CHECKS = Counter(
    "credit_feature_store_checks_total",
    "Completeness checks of the online store, by outcome (complete, incomplete, unreachable).",
    ["outcome"],
)
