"""The Redis servers of credit.local_redis for tests: a missing binary skips the test on a
developer's machine and fails it in CI (``missing_service``)."""

from __future__ import annotations

import shutil

from credit.local_redis import free_port, redis_cluster, redis_server, sentinel_group
from tests.conftest import missing_service

__all__ = ["free_port", "redis_cluster", "redis_server", "require_redis", "sentinel_group"]


def require_redis() -> None:
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            missing_service(f"no {binary}: bash scripts/ensure-test-tools.sh installs it")
