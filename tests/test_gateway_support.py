"""Helpers shared by the gateway tests (no tests here): keys, settings, a running app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.gateway.keys import SCOPES, add_key
from services.gateway.schemas import Application
from services.gateway.settings import GatewaySettings
from serving_core.fields import EXTRA_MAPS
from tests.conftest import missing_service

# scripts/ensure-services.sh gives a PostgreSQL it installs this password; where the server
# trusts local connections (CI machines here) the password is simply not asked for.
PG_ADMIN = (
    "host=127.0.0.1 port=5432 user=postgres password=postgres dbname=postgres connect_timeout=3"
)

# The application the API documents as its example (without the two free-form maps): the
# tests then also prove that the documented example is accepted.
APPLICATION = {
    name: value
    for name, value in Application.model_config["json_schema_extra"]["examples"][0].items()
    if name not in EXTRA_MAPS
}


def write_keys(path: Path) -> dict[str, str]:
    """Plain keys by role, all of one partner ("partner", the id of the key that makes the
    tests' decisions); the file holds only their hashes. Tenancy: tests/test_tenancy.py."""
    one = "partner"
    return {
        "all": add_key(path, "all", SCOPES, rate_per_minute=100_000, partner=one),
        "score": add_key(path, "partner", ["score"], rate_per_minute=100_000, partner=one),
        "reader": add_key(path, "reader", ["read:clients"], rate_per_minute=100_000, partner=one),
        "slow": add_key(path, "slow", SCOPES, rate_per_minute=2, partner=one),
    }


def settings_for(
    keys_file: Path, database_url: str, scoring: str, explainer: str, **overrides: object
) -> GatewaySettings:
    return GatewaySettings(
        scoring_address=scoring,
        explainer_address=explainer,
        database_url=database_url,
        api_keys_file=keys_file,
        api_keys=None,
        retry_backoff_seconds=0.05,
        model_cache_seconds=0,
        **overrides,
    )  # type: ignore[arg-type]


@contextmanager
def running(settings: GatewaySettings) -> Iterator[TestClient]:
    """The app in process with its lifespan (channels, tables) run, like under uvicorn."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@contextmanager
def served(settings: GatewaySettings) -> Iterator[tuple[str, int]]:
    """The app under a real uvicorn server on a free port, in a thread of this process, for
    what needs a socket (a browser, raw requests); yields its URL and port once it listens."""
    import threading
    import time

    import uvicorn

    from services.gateway.edge import server_config
    from tests.stack import free_port

    port = free_port()
    # The gateway's own uvicorn configuration (edge limits included), on a free port.
    server = uvicorn.Server(
        server_config(
            create_app(settings), settings, host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the gateway did not start"
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database, dropped afterwards; skips when none listens."""
    psycopg = pytest.importorskip("psycopg")
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as error:
        missing_service(f"no PostgreSQL on 127.0.0.1:5432 ({error})")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres:postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
