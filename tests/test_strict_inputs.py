"""Strict inputs (issue 17): ids are JSON integers or plain decimal digits, booleans are
true/false, a model version is canonical or unknown (404), and an error never echoes more
than a short prefix of what was sent. All refused before any backend is called (the
backend addresses here point at a closed port)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.errors import MAX_ECHO
from tests.stack import free_port
from tests.test_gateway_support import running, settings_for, write_keys


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict]]:
    root: Path = tmp_path_factory.mktemp("strict")
    keys = write_keys(root / "keys.json")
    closed = f"127.0.0.1:{free_port()}"
    settings = settings_for(
        root / "keys.json", f"sqlite:///{root / 'd.db'}", closed, closed, retries=0
    )
    with running(settings) as test_client:
        yield test_client, {"X-API-Key": keys["all"]}


def problem(response: object, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict = response.json()  # type: ignore[attr-defined]
    return body


@pytest.mark.parametrize("raw", ["100_002", "+100002", "%20100002%20", "0100002", "1e5", "-1"])
def test_ids_in_paths_and_queries_are_plain_digits(
    client: tuple[TestClient, dict], raw: str
) -> None:
    http, headers = client
    for url in (
        f"/v1/clients/{raw}",
        f"/v1/clients/{raw}/explanation",
        f"/v1/decisions?client_id={raw}",
    ):
        assert problem(http.get(url, headers=headers), 422)["field"] == "client_id"


@pytest.mark.parametrize("value", ["100002", 100002.0, True, " 100002"])
def test_ids_in_bodies_are_json_integers(client: tuple[TestClient, dict], value: object) -> None:
    http, headers = client
    problem(http.post("/v1/scores", json={"client_id": value}, headers=headers), 422)
    problem(http.post("/v1/scores/batch", json={"client_ids": [value]}, headers=headers), 422)


@pytest.mark.parametrize("value", ["yes", "true", 0, 1, None])
def test_simulation_is_a_json_boolean(client: tuple[TestClient, dict], value: object) -> None:
    http, headers = client
    body = problem(
        http.post("/v1/scores", json={"client_id": 100002, "simulation": value}, headers=headers),
        422,
    )
    assert body["field"] == "simulation"


@pytest.mark.parametrize("version", ["01", ".", "..", "1.0", "v1", "0"])
def test_a_model_version_is_canonical_or_unknown(
    client: tuple[TestClient, dict], version: str
) -> None:
    http, headers = client
    for url in (
        f"/v1/clients/100002/explanation?model_version={version}",
        f"/v1/population/features/AMT_CREDIT?model_version={version}",
        f"/v1/clients/100002/neighbours?model_version={version}",
    ):
        assert problem(http.get(url, headers=headers), 404)["field"] == "model_version"


def test_errors_echo_only_a_short_prefix(client: tuple[TestClient, dict]) -> None:
    http, headers = client
    long_value = "9" * 5000
    for response in (
        http.get(f"/v1/clients/100002/explanation?model_version={long_value}", headers=headers),
        http.post("/v1/scores", json={"client_id": long_value}, headers=headers),
        http.get(f"/v1/clients/{long_value}", headers=headers),
    ):
        assert response.status_code in (404, 422)
        # At most a short prefix (MAX_ECHO characters) of the value comes back.
        assert len(response.text) < 2000 and long_value[: MAX_ECHO + 1] not in response.text
