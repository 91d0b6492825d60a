"""gRPC server bootstrap: health, reflection, Prometheus metrics, typed-error mapping.

Both gRPC services start through ``build_server``; their own code only registers a
servicer. The interceptor is where typed ``ServiceError``s become gRPC statuses and where
every call is counted and timed, so handlers hold business logic only.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from credit.heap import freeze_startup_objects
from services.common.errors import REASON_KEY, ServiceError
from services.common.metrics import GRPC_HANDLED, GRPC_LATENCY

log = structlog.get_logger(__name__)
# Time a call in flight keeps its connection after the server's GOAWAY (connection age):
# longer than the gateway's longest deadline (explainer, 15 s), so an aged connection never
# cuts a call short.
CONNECTION_AGE_GRACE_SECONDS = 30.0


class ErrorsAndMetricsInterceptor(grpc.ServerInterceptor):
    """Maps ServiceError to its status code; counts and times every unary call."""

    def __init__(self) -> None:
        # gRPC asks the interceptor for a handler on every call; the wrapped handler of a
        # method never changes once the server runs, so it is built once per method.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(
        self, continuation: Callable[[Any], grpc.RpcMethodHandler | None], handler_call_details: Any
    ) -> grpc.RpcMethodHandler | None:
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is not None:
            return wrapped
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        wrapped = self._wrap(handler, handler_call_details.method)
        self._wrapped[handler_call_details.method] = wrapped
        return wrapped

    @staticmethod
    def _wrap(handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        _, service, method = full_method.split("/")
        behaviour = handler.unary_unary
        latency = GRPC_LATENCY.labels(service, method)

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return behaviour(request, context)
            except ServiceError as error:
                code = error.code
                if error.reason is not None:
                    context.set_trailing_metadata(((REASON_KEY, error.reason),))
                context.abort(error.code, error.message)
            except Exception:
                # Anything else is a bug: log it here, tell the caller nothing internal.
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled_error", method=method)
                context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                if code is grpc.StatusCode.OK and context.code() is not None:
                    code = context.code()
                GRPC_HANDLED.labels(service, method, code.name).inc()
                latency.observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def build_server(
    *,
    address: str,
    service_names: list[str],
    register: Callable[[grpc.Server], None],
    max_workers: int = 8,
    reflection_enabled: bool = False,
    credentials: grpc.ServerCredentials | None = None,
    max_connection_age_seconds: float | None = None,
) -> tuple[grpc.Server, health.HealthServicer]:
    """A started-ready (not started) server with health and reflection; health NOT_SERVING
    until the service says it is ready. With ``credentials`` (``server_credentials()`` of
    the service's settings: mTLS, client certificate required) the port is TLS only.

    ``max_connection_age_seconds``: each client connection is sent a GOAWAY after about that
    long (gRPC adds +-10 % jitter), calls in flight get ``CONNECTION_AGE_GRACE_SECONDS`` to
    finish. A gRPC client resolves its target's DNS name only when a connection ends: without
    an age, the gateway's round robin over a headless Service never learns of the pods that
    the HPA adds (measured: a third server never got a call in 15 s; with a 2 s age it did
    within 2 s, tests/test_gateway_dns_balancing.py)."""
    options: list[tuple[str, int]] = []
    if max_connection_age_seconds is not None:
        options = [
            ("grpc.max_connection_age_ms", int(max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(CONNECTION_AGE_GRACE_SECONDS * 1000)),
        ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[ErrorsAndMetricsInterceptor()],
        options=options,
    )
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if reflection_enabled:
        reflection.enable_server_reflection(
            [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
    if credentials is not None:
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise RuntimeError(f"cannot listen on {address}")
    return server, health_servicer


def set_serving(health_servicer: health.HealthServicer, names: list[str], serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ["", *names]:
        health_servicer.set(name, status)


def run_until_signal(
    server: grpc.Server,
    health_servicer: health.HealthServicer,
    service_names: list[str],
    *,
    metrics_port: int,
    host: str,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Serve metrics and gRPC until SIGTERM/SIGINT, then drain: NOT_SERVING first (load
    balancers stop sending), then a graceful stop that lets calls in flight finish."""
    start_http_server(metrics_port, addr=host)
    freeze_startup_objects()
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping", services=service_names)
    set_serving(health_servicer, service_names, False)
    if on_stop is not None:
        on_stop()
    server.stop(grace=5).wait()
