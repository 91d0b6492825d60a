"""Two gateway processes sharing a Redis enforce one rate limit per key.

Each gateway runs as its own process (``python -m services.gateway``, as in a pod) with
``GATEWAY_RATE_LIMIT_REDIS_URL`` naming the test's own redis-server. Requests alternate
between the two; together they must let through the key's per-minute allowance once, not
once per process. No backend runs: the limit is checked before any backend is called, so
an allowed request answers 503 (backend unavailable) and a limited one 429.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from services.gateway.keys import SCOPES, add_key
from tests.redis_servers import free_port, redis_server, require_redis

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
LIMIT = 6  # requests per minute: one token back every 10 s


@contextmanager
def gateway_process(
    root: Path, keys: Path, redis_url: str | None, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """A gateway process on a free port; ``env`` adds to (or replaces) its variables."""
    port = free_port()
    unused = free_port()  # nothing listens there: backends are unavailable at once
    variables = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_API_KEYS_FILE": str(keys),
        "GATEWAY_DATABASE_URL": f"sqlite:///{root / f'decisions-{port}.db'}",
        "GATEWAY_DECISION_ARCHIVE_DIR": str(root / f"archive-{port}"),
        "GATEWAY_SCORING_ADDRESS": f"127.0.0.1:{unused}",
        "GATEWAY_EXPLAINER_ADDRESS": f"127.0.0.1:{unused}",
        "GATEWAY_RETRIES": "0",
        "GATEWAY_LOG_FORMAT": "json",
    }
    variables.pop("GATEWAY_RATE_LIMIT_REDIS_URL", None)
    if redis_url:
        variables["GATEWAY_RATE_LIMIT_REDIS_URL"] = redis_url
    variables.update(env or {})
    log = (root / f"gateway-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.gateway"],
        cwd=REPO,
        env=variables,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a busy 2-core machine imports slowly
        while True:
            assert process.poll() is None, (root / f"gateway-{port}.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _burst(urls: list[str], key: str, requests: int) -> tuple[dict[str, list[int]], float]:
    statuses: dict[str, list[int]] = {url: [] for url in urls}
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for i in range(requests):
            url = urls[i % len(urls)]
            reply = client.get(f"{url}/v1/model", headers={"X-API-Key": key})
            statuses[url].append(reply.status_code)
            if reply.status_code == 429:
                assert int(reply.headers["Retry-After"]) >= 1
    return statuses, time.monotonic() - started


def test_two_gateways_enforce_one_limit(tmp_path: Path) -> None:
    require_redis()
    keys = tmp_path / "keys.json"
    key = add_key(keys, "limited", SCOPES, rate_per_minute=LIMIT, partner="partner")
    with ExitStack() as stack:
        port, _ = stack.enter_context(redis_server(tmp_path / "redis"))
        url = f"redis://127.0.0.1:{port}/0"
        gateways = [stack.enter_context(gateway_process(tmp_path, keys, url)) for _ in range(2)]
        statuses, seconds = _burst(gateways, key, 3 * LIMIT)
        allowed = [s for codes in statuses.values() for s in codes if s != 429]
        # Tokens come back at LIMIT per minute while the burst runs.
        refilled = math.floor(seconds * LIMIT / 60)
        assert LIMIT <= len(allowed) <= LIMIT + refilled, (statuses, seconds)
        assert set(allowed) == {503}  # allowed, then no backend
        for codes in statuses.values():  # each process saw the other's requests count
            assert 429 in codes
        bucket = redis.Redis(port=port).keys("credit:ratelimit:*")
        assert len(bucket) == 1


def test_without_redis_each_process_has_its_own_limit(tmp_path: Path) -> None:
    """The contrast: per-process buckets let the allowance through once per process."""
    keys = tmp_path / "keys.json"
    key = add_key(keys, "limited", SCOPES, rate_per_minute=LIMIT, partner="partner")
    with ExitStack() as stack:
        gateways = [stack.enter_context(gateway_process(tmp_path, keys, None)) for _ in range(2)]
        statuses, seconds = _burst(gateways, key, 3 * LIMIT)
        allowed = [s for codes in statuses.values() for s in codes if s != 429]
        assert len(allowed) >= 2 * LIMIT, (statuses, seconds)
