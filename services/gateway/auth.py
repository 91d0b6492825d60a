"""Authentication (X-API-Key), scopes and per-key rate limiting, as FastAPI dependencies.

The rate limiter is a token bucket per key (capacity: the key's requests per minute,
refilled continuously). ``RateLimiter`` holds the buckets in this process's memory: with
several gateway processes each allows the full rate. ``SharedRateLimiter``
(``GATEWAY_RATE_LIMIT_REDIS_URL``) holds them in Redis, updated by one Lua script on
Redis' own clock, so every gateway process sharing that Redis enforces one limit per key.
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
    name="X-API-Key",
    auto_error=False,
    description="API key; scopes: score, explain, read:clients, audit, outcomes, audit:all.",
)


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

    async def acquire_async(self, key: ApiKey) -> float:
        return self.acquire(key)

    async def aclose(self) -> None:
        return None


# KEYS[1]: the key's bucket; ARGV[1]: its capacity (requests per minute). Returns the wait
# in seconds as a string (Lua numbers reach Redis as integers): "0" when the request may go.
# Redis' TIME is the clock, so processes on machines whose clocks drift agree.
_BUCKET_SCRIPT = """
local capacity = tonumber(ARGV[1])
local per_second = capacity / 60
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or capacity
local updated = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * per_second)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / per_second end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'updated', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(60000 * (capacity - tokens) / capacity) + 1000)
return string.format('%.6f', wait)
"""


class SharedRateLimiter:
    """The per-key token bucket held in Redis, shared by every gateway process.

    One atomic script per request (a round trip, ~0.1-0.3 ms); the bucket expires once it
    would be full again. When Redis cannot be reached the request goes (the limit protects
    capacity, it is not an access control) and ``rate_limiter_unavailable`` is logged.
    """

    def __init__(self, url: str, prefix: str = "credit:ratelimit:", timeout: float = 0.5) -> None:
        import redis
        import redis.asyncio

        self.prefix = prefix
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self._sync = redis.Redis.from_url(url, **options)
        self._async = redis.asyncio.Redis.from_url(url, **options)  # type: ignore[arg-type]
        self._sync_script = self._sync.register_script(_BUCKET_SCRIPT)
        self._async_script = self._async.register_script(_BUCKET_SCRIPT)
        self._errors = (redis.RedisError, OSError)

    def _unavailable(self, key: ApiKey, error: BaseException) -> float:
        log.warning("rate_limiter_unavailable", key_id=key.id, error=str(error))
        return 0.0

    def acquire(self, key: ApiKey) -> float:
        try:
            wait = self._sync_script(keys=[self.prefix + key.id], args=[key.rate_per_minute])
        except self._errors as error:
            return self._unavailable(key, error)
        return float(wait)

    async def acquire_async(self, key: ApiKey) -> float:
        try:
            wait = await self._async_script(keys=[self.prefix + key.id], args=[key.rate_per_minute])
        except self._errors as error:
            return self._unavailable(key, error)
        return float(wait)

    async def aclose(self) -> None:
        await self._async.aclose()
        self._sync.close()


def limiter_for(redis_url: str | None) -> RateLimiter | SharedRateLimiter:
    """The shared limiter when a Redis is named, else this process's own."""
    return SharedRateLimiter(redis_url) if redis_url else RateLimiter()


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
        self,
        keys: KeyStore | dict[str, ApiKey],
        limiter: RateLimiter | SharedRateLimiter | None = None,
    ) -> None:
        self.keys: KeyStore | _StaticKeys = _StaticKeys(keys) if isinstance(keys, dict) else keys
        self.limiter = limiter or RateLimiter()

    def authenticate(self, plain: str | None, scopes: tuple[str, ...]) -> ApiKey:
        key = self.identify(plain, scopes)
        self._check_rate(key, self.limiter.acquire(key))
        return key

    async def authenticate_async(self, plain: str | None, scopes: tuple[str, ...]) -> ApiKey:
        """``authenticate`` without blocking the event loop on a shared limiter's Redis."""
        key = self.identify(plain, scopes)
        self._check_rate(key, await self.limiter.acquire_async(key))
        return key

    def identify(self, plain: str | None, scopes: tuple[str, ...]) -> ApiKey:
        if not plain:
            raise ApiError(
                401,
                "missing API key (X-API-Key header)",
                slug="unauthenticated",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        key = self.keys.get(hash_key(plain))
        if key is None:
            raise ApiError(
                401,
                "unknown API key",
                slug="unauthenticated",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        if scopes and not set(scopes) & set(key.scopes):
            raise ApiError(403, f"this key lacks the scope {' or '.join(scopes)}", slug="forbidden")
        return key

    def _check_rate(self, key: ApiKey, wait: float) -> None:
        if wait > 0:
            log.info("rate_limited", key_id=key.id)
            raise ApiError(
                429,
                f"rate limit of {key.rate_per_minute} requests per minute exceeded",
                slug="rate-limited",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def require(*scopes: str) -> Callable[..., Awaitable[ApiKey]]:
    """Dependency: a valid key holding any of ``scopes`` (no scope: any valid key)."""

    async def dependency(request: Request, plain: str | None = Security(API_KEY_HEADER)) -> ApiKey:
        auth: Authenticator = request.app.state.auth
        key = await auth.authenticate_async(plain, scopes)
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
