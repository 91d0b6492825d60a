"""Prometheus metrics of the gateway, RED-style, plus decisions and backend calls.

Labels use the route template (``/v1/clients/{client_id}``), never the raw path, so the
number of series stays bounded whatever the callers send.
"""

from __future__ import annotations

import time

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("services.gateway.access")
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by route template and method.",
    ["route", "method"],
    buckets=BUCKETS,
)
DECISIONS = Counter(
    "credit_decisions_total", "Real credit decisions (simulations excluded).", ["decision"]
)
EXPLORATION_GRANTS = Counter(
    "credit_exploration_grants_total",
    "Would-be refusals granted by the exploration share (GATEWAY_EXPLORATION_SHARE); they are "
    "also counted as granted in credit_decisions_total.",
)
PROBABILITIES = Histogram(
    "credit_score_probability",
    "Probability of default of real decisions (score distribution).",
    buckets=(0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0),
)
BACKEND_CALLS = Histogram(
    "gateway_backend_call_seconds",
    "gRPC calls to the backends, by service, method and code.",
    ["service", "method", "code"],
    buckets=BUCKETS,
)
DECISION_COMMITS = Histogram(
    "credit_decision_log_commit_seconds",
    "Decision-log transactions (one group commit each): the INSERT and the commit, fsync included.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DECISIONS_PER_COMMIT = Histogram(
    "credit_decision_log_decisions_per_commit",
    "Decisions one decision-log transaction carried (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
DECISION_LOG_FAILURES = Counter(
    "credit_decision_log_write_failures_total",
    "Decision-log transactions that failed: their callers got an error and no decision.",
)

QUIET_ROUTES = {"/healthz", "/readyz", "/metrics"}  # probes would drown the log


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObservabilityMiddleware:
    """Counts, times and logs every HTTP request (pure ASGI: sees the final status and the
    matched route). The access log names the caller's key id, never the key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route, method = route_template(scope), scope["method"]
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            elapsed = time.perf_counter() - started
            HTTP_DURATION.labels(route, method).observe(elapsed)
            if route not in QUIET_ROUTES:
                log.info(
                    "http_request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(1000 * elapsed, 2),
                    key_id=scope.get("state", {}).get("key_id"),
                )
