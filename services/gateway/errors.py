"""Every error the gateway returns, as RFC 9457 ``application/problem+json``.

Backend gRPC status codes become HTTP statuses in ``from_grpc`` and nowhere else; FastAPI's
own validation errors, unknown routes, auth failures and anything unexpected also leave
through the handlers here, so a caller never sees a stack trace or a non-problem body.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import grpc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.errors import REASON_KEY, FeatureStoreIncomplete
from services.gateway.decisions import OutcomeConflict, SimulationOutcome, UnknownDecision

log = structlog.get_logger(__name__)
PROBLEM_TYPE = "https://credit-scoring.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_ECHO = 120  # characters of a caller's input an error may repeat


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[f"{PROBLEM_TYPE}not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["unknown client 123"])
    instance: str = Field(examples=["/v1/clients/123"])
    field: str | None = Field(None, description="The offending field, when one is known.")
    errors: list[dict[str, Any]] | None = Field(None, description="Validation errors.")
    recorded: dict[str, Any] | None = Field(
        None, description="409 outcome-conflict: the outcome already recorded."
    )


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or HTTPStatus(status).phrase.lower().replace(" ", "-")
        self.field = field
        self.headers = headers or {}


# The one mapping from a backend's status code to an HTTP status (others -> 502).
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


# An incomplete store comes back when a materialisation has run (minutes), not within a
# second as a restarted backend does.
RETRY_INCOMPLETE = "10"


def _reason(error: grpc.aio.AioRpcError) -> str | None:
    """The backend's REASON_KEY trailing metadata (services.common.errors), if any."""
    for key, value in error.trailing_metadata() or ():
        if key == REASON_KEY:
            return value if isinstance(value, str) else value.decode()
    return None


def from_grpc(service: str, error: grpc.aio.AioRpcError) -> ApiError:
    code = error.code()
    status = GRPC_TO_HTTP.get(code, 502)
    details = error.details() or ""
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        # The backends word it "field: problem" (services.common.errors.InvalidArgument).
        field = details.split(":", 1)[0] if ":" in details else None
        return ApiError(422, details, slug="invalid-argument", field=field)
    if code is grpc.StatusCode.NOT_FOUND:
        return ApiError(404, details or "not found", slug="not-found")
    if code is grpc.StatusCode.UNAVAILABLE and _reason(error) == FeatureStoreIncomplete.reason:
        # Up, but its feature store is not a complete materialisation: say so, never 404.
        log.error("feature_store_incomplete", service=service, details=details)
        return ApiError(
            503,
            "the feature store is incomplete (being reloaded, or its data was lost), so "
            "no answer is given from it; retry later",
            slug=FeatureStoreIncomplete.reason,
            headers={"Retry-After": RETRY_INCOMPLETE},
        )
    if code is grpc.StatusCode.UNAVAILABLE:
        # Transport details name internal addresses: keep them in the logs only.
        log.warning("backend_unavailable", service=service, details=details)
        return ApiError(
            503,
            f"the {service} service is unavailable; retry later",
            slug=f"{service}-unavailable",
            headers={"Retry-After": "1"},
        )
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return ApiError(504, f"the {service} service did not answer in time", slug="timeout")
    log.error("backend_error", service=service, code=code.name, details=details)
    return ApiError(status, f"the {service} service failed", slug="backend-error")


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    slug = slug or HTTPStatus(status).phrase.lower().replace(" ", "-")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        # A path can carry a caller's value (an id, a feature name): never echoed in full.
        "instance": request.url.path[:MAX_ECHO],
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _validation_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: echoing the input back could leak what was sent.
    return [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in error.errors()
    ]


def install_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return problem_response(
            request,
            error.status,
            error.detail,
            slug=error.slug,
            headers=error.headers,
            field=error.field,
        )

    async def validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = _validation_errors(error)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        field = ".".join(p for p in first["loc"] if p not in ("body", "query", "path"))
        return problem_response(
            request,
            422,
            f"{field or 'request'}: {first['msg']}",
            slug="validation-error",
            field=field or None,
            errors=errors,
        )

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        return problem_response(
            request, error.status_code, str(error.detail), headers=dict(error.headers or {})
        )

    async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
        # The decision log's database is down, gone or full. Driver messages name hosts and
        # users: they stay in the logs.
        log.error(
            "decision_log_unavailable",
            path=request.url.path,
            error=str(error).splitlines()[0][:300],
        )
        detail = "the decision log is unavailable; retry later"
        if request.method == "POST":
            detail = (
                "the decision log is unavailable, so no decision was recorded or returned; "
                "retry later"
            )
        return problem_response(
            request, 503, detail, slug="decision-log-unavailable", headers={"Retry-After": "1"}
        )

    async def unknown_decision(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, UnknownDecision)
        return problem_response(request, 404, str(error), slug="not-found", field="decision_id")

    async def outcome_conflict(request: Request, error: Exception) -> JSONResponse:
        # The recorded outcome goes back with the 409: the caller sees what it contradicts.
        assert isinstance(error, OutcomeConflict)
        recorded = error.recorded
        return problem_response(
            request,
            409,
            str(error),
            slug="outcome-conflict",
            recorded={
                "defaulted": recorded.defaulted,
                "observed_at": recorded.observed_at.isoformat(),
            },
        )

    async def simulation_outcome(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, SimulationOutcome)
        return problem_response(
            request, 422, str(error), slug="simulation-decision", field="decision_id"
        )

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem_response(request, 500, "internal error", slug="internal-error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(UnknownDecision, unknown_decision)
    app.add_exception_handler(OutcomeConflict, outcome_conflict)
    app.add_exception_handler(SimulationOutcome, simulation_outcome)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(InterfaceError, database_unavailable)
    app.add_exception_handler(Exception, unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the problem bodies of a route."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
