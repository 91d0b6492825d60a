"""Authentication (X-API-Key), scopes and per-key rate limiting, as FastAPI dependencies.

The rate limiter is a token bucket per key held in this process's memory: with several
gateway processes each allows the full rate (a shared limit would need Redis).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from services.gateway.errors import ApiError
from services.gateway.keys import ApiKey, KeyStore, hash_key

log = structlog.get_logger(__name__)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False,
    description="API key; scopes: score, explain, read:clients, audit, outcomes, audit:all.",
)  # fmt: skip


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: ApiKey) -> float:
        """0 when the request may go; otherwise seconds until a token is available."""
        capacity = float(key.rate_per_minute)
        per_second = capacity / 60.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.setdefault(key.id, _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * per_second)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / per_second


class _StaticKeys:
    """A fixed dict of keys behind the ``KeyStore`` interface (tests, embedding)."""

    def __init__(self, keys: dict[str, ApiKey]) -> None:
        self._keys = keys
        self._partner_of = {key.id: key.tenant for key in keys.values()}

    def get(self, key_hash: str) -> ApiKey | None:
        return self._keys.get(key_hash)

    def __len__(self) -> int:
        return len(self._keys)

    def partner_of(self, key_id: str) -> str:
        return self._partner_of.get(key_id, key_id)

    def key_ids_of(self, partner: str) -> list[str]:
        ids = {k for k, owner in self._partner_of.items() if owner == partner}
        if partner not in self._partner_of:
            ids.add(partner)
        return sorted(ids)


class Authenticator:
    def __init__(
        self, keys: KeyStore | dict[str, ApiKey], limiter: RateLimiter | None = None
    ) -> None:
        self.keys: KeyStore | _StaticKeys = _StaticKeys(keys) if isinstance(keys, dict) else keys
        self.limiter = limiter or RateLimiter()

    def authenticate(self, plain: str | None, scopes: tuple[str, ...]) -> ApiKey:
        if not plain:
            raise ApiError(401, "missing API key (X-API-Key header)", slug="unauthenticated",
                           headers={"WWW-Authenticate": "ApiKey"})  # fmt: skip
        key = self.keys.get(hash_key(plain))
        if key is None:
            raise ApiError(401, "unknown API key", slug="unauthenticated",
                           headers={"WWW-Authenticate": "ApiKey"})  # fmt: skip
        if scopes and not set(scopes) & set(key.scopes):
            raise ApiError(403, f"this key lacks the scope {' or '.join(scopes)}",
                           slug="forbidden")  # fmt: skip
        wait = self.limiter.acquire(key)
        if wait > 0:
            log.info("rate_limited", key_id=key.id)
            raise ApiError(
                429, f"rate limit of {key.rate_per_minute} requests per minute exceeded",
                slug="rate-limited", headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )  # fmt: skip
        return key


def require(*scopes: str) -> Callable[..., Awaitable[ApiKey]]:
    """Dependency: a valid key holding any of ``scopes`` (no scope: any valid key)."""

    async def dependency(request: Request, plain: str | None = Security(API_KEY_HEADER)) -> ApiKey:
        auth: Authenticator = request.app.state.auth
        key = auth.authenticate(plain, scopes)
        request.state.key_id = key.id  # for the access log; the key itself is never logged
        return key

    return dependency


def visible(request: Request, key: ApiKey, deciding_key_id: str) -> bool:
    """Whether ``key`` may see a decision made by the key ``deciding_key_id``: its own
    partner's, or any with the cross-partner audit scope."""
    if key.cross_partner:
        return True
    auth: Authenticator = request.app.state.auth
    return auth.keys.partner_of(deciding_key_id) == key.tenant


def partner_key_ids(request: Request, key: ApiKey) -> list[str] | None:
    """The key ids whose decisions ``key`` may list; None: every partner's."""
    if key.cross_partner:
        return None
    auth: Authenticator = request.app.state.auth
    return auth.keys.key_ids_of(key.tenant)
