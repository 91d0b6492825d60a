"""The gateway application: ``create_app(settings)`` wires settings, keys, backends, the
decision log, error handlers and metrics; ``python -m services.gateway`` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from services.gateway.auth import Authenticator, limiter_for
from services.gateway.backends import Backends
from services.gateway.decisions import DecisionLog
from services.gateway.edge import EdgeGuard
from services.gateway.errors import Problem, install_handlers
from services.gateway.keys import KeyStore
from services.gateway.metrics import ObservabilityMiddleware
from services.gateway.openapi import document_edges
from services.gateway.routes import ops, v1
from services.gateway.service import CreditService
from services.gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)
DESCRIPTION = """
Credit scoring for partners and the advisor dashboard.

* Authenticate with an API key in the `X-API-Key` header; scopes: `score`, `explain`,
  `read:clients`, `audit`, `outcomes`, `audit:all`. Every key belongs to a partner and
  sees only that partner's decisions (`audit:all`: every partner's, for auditors). Each
  key has a rate limit (per gateway process): over it the answer is 429 with `Retry-After`.
* Errors are RFC 9457 `application/problem+json` bodies; `field` names the offending input.
* Every real decision is logged before the answer is sent; `decision_id` retrieves it
  (`GET /v1/decisions/{decision_id}`, scope `audit`). Simulations (`"simulation": true`)
  are logged flagged as such and never count as decisions.
* What became of a granted loan: `PUT /v1/decisions/{decision_id}/outcome` (scope
  `outcomes`), idempotent; a different outcome for the same decision is a 409.
"""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        decisions = DecisionLog(settings.database_url, archive_dir=settings.decision_archive_dir)
        await run_in_threadpool(decisions.open)
        # grpc.aio channels belong to the running loop: created here, not at import.
        backends = Backends(settings)
        app.state.decisions, app.state.backends = decisions, backends
        app.state.service = CreditService(
            backends, decisions, settings.max_batch, settings.exploration_share
        )
        log.info(
            "gateway_started",
            scoring=settings.scoring_address,
            explainer=settings.explainer_address,
            keys=len(app.state.auth.keys),
            database=decisions.engine.url.render_as_string(hide_password=True),
        )
        try:
            yield
        finally:
            await backends.close()
            await app.state.auth.limiter.aclose()
            decisions.close()
            log.info("gateway_stopped")

    # The docs page's scripts and styles are served from the package, never from a CDN.
    app = FastAPIOffline(
        title="Credit scoring gateway",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.settings = settings
    # Re-read when the key file changes: rotation and revocation need no restart.
    # The rate limit is per process unless a Redis shared by every gateway process is named.
    app.state.auth = Authenticator(
        KeyStore(settings.api_keys_file, settings.api_keys),
        limiter_for(settings.rate_limit_redis_url),
    )
    install_handlers(app)
    # Added first, so inside the observability middleware (which counts its 401s and 413s).
    app.add_middleware(
        EdgeGuard,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
    )
    app.add_middleware(ObservabilityMiddleware)
    app.include_router(v1)
    app.include_router(ops)

    original_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        # The problem schema is referenced by every route's error responses.
        schema = original_openapi()
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        app.openapi_schema = document_edges(schema, settings.max_batch)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
