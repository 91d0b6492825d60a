"""Typed errors of the service layer, mapped to gRPC status codes in this one place.

Handlers raise these; the server interceptor turns them into statuses. Nothing else in a
service decides a status code, and no stack trace ever reaches a caller.
"""

from __future__ import annotations

import grpc

# Trailing-metadata key naming why a call failed, when its status code alone does not tell
# the caller what to answer (the gateway maps it to its problem type).
REASON_KEY = "credit-error-reason"


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str | None = None  # sent as REASON_KEY when set

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class Unavailable(ServiceError):
    """A dependency (feature store, registry) cannot be reached; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


class NotReady(ServiceError):
    """The service is up but has nothing to serve yet (no champion model registered)."""

    code = grpc.StatusCode.UNAVAILABLE


class FeatureStoreIncomplete(Unavailable):
    """The online store is not (or no longer) a complete materialisation for the model:
    emptied, never fully loaded, or holding part of a client. The caller must not be told
    that a client does not exist; it may retry once the store is materialised again."""

    reason = "feature-store-incomplete"
