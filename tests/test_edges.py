"""The gateway's edge (issue 17): the key is checked before the body is read, and the body
is capped at GATEWAY_MAX_BODY_BYTES (1 MiB), batch included, answered as problem+json.

A real uvicorn server on a free port and raw sockets: a request announcing a 2 MB body and
sending none of it gets its answer at once, which shows the body was never waited for, let
alone parsed. No gRPC backend is needed: nothing here gets as far as one (the addresses
point at a closed port)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.gateway.app import create_app
from tests.stack import free_port
from tests.test_gateway_support import served, settings_for, write_keys

TWO_MB = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("edge")
    keys = write_keys(root / "keys.json")
    closed = f"127.0.0.1:{free_port()}"
    settings = settings_for(root / "keys.json", f"sqlite:///{root / 'd.db'}", closed, closed,
                            retries=0)  # fmt: skip
    with served(settings) as (url, port):
        yield {"url": url, "port": port, "keys": keys}


def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Sends ``head`` (and ``body``, possibly far shorter than announced) and reads the
    answer; a server still waiting for the body would hit the 10 s timeout here."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before an answer"
            data += chunk
        header_part, _, rest = data.partition(b"\r\n\r\n")
        lines = header_part.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(lines[0].split()[1]), headers, rest


def head_for(path: str, length: int, key: str | None = None) -> str:
    key_line = f"X-API-Key: {key}\r\n" if key else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{key_line}Content-Length: {length}\r\n\r\n")  # fmt: skip


def test_no_key_is_401_before_the_body_is_read(gateway: dict[str, Any]) -> None:
    # 2 MB announced, 1 KB sent: the answer comes without the rest (or a timeout).
    status, headers, body = raw_request(gateway["port"], head_for("/v1/scores", TWO_MB),
                                        b"{" * 1024)  # fmt: skip
    assert status == 401 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"].endswith("/unauthenticated")
    status, _, _ = raw_request(gateway["port"], head_for("/v1/scores/batch", TWO_MB, "nope"))
    assert status == 401  # an unknown key likewise


def test_with_a_key_a_2mb_body_is_413_unread(gateway: dict[str, Any]) -> None:
    key = gateway["keys"]["all"]
    for path in ("/v1/scores", "/v1/scores/batch", "/v1/explanations"):
        status, headers, body = raw_request(gateway["port"], head_for(path, TWO_MB, key))
        assert status == 413, body
        assert headers["content-type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["status"] == 413 and "1048576" in problem["detail"]


def test_malformed_json_without_a_key_is_401_not_422(gateway: dict[str, Any]) -> None:
    url = gateway["url"]
    for key in (None, "wrong"):
        headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
        answer = httpx.post(f"{url}/v1/scores", content=b'{"client_id": ', headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    # With a key, the same body is a validation error naming the JSON problem.
    answer = httpx.post(f"{url}/v1/scores", content=b'{"client_id": ',
                        headers={"Content-Type": "application/json",
                                 "X-API-Key": gateway["keys"]["all"]})  # fmt: skip
    assert answer.status_code == 422 and "JSON" in answer.json()["detail"]


def test_a_chunked_body_over_the_limit_is_413(gateway: dict[str, Any]) -> None:
    """No Content-Length (chunked): counted as it arrives, refused once over 1 MiB."""

    def chunks() -> Iterator[bytes]:
        yield b'{"client_ids": ['
        for _ in range(200):
            yield b"100002," * 1000  # 7 KB a chunk, 1.4 MB in all
        yield b"100002]}"

    answer = httpx.post(f"{gateway['url']}/v1/scores/batch", content=chunks(),
                        headers={"Content-Type": "application/json",
                                 "X-API-Key": gateway["keys"]["all"]}, timeout=30)  # fmt: skip
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_health_stays_open_and_a_small_body_goes_through(gateway: dict[str, Any]) -> None:
    url = gateway["url"]
    assert httpx.get(f"{url}/healthz").status_code == 200  # no key needed
    # Under the limit, with a key: the request reaches the route (the backend is down).
    answer = httpx.post(f"{url}/v1/scores", json={"client_id": 100002},
                        headers={"X-API-Key": gateway["keys"]["all"]}, timeout=30)  # fmt: skip
    assert answer.status_code == 503, answer.text


def test_the_limit_is_a_setting(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    keys = write_keys(tmp_path / "keys.json")
    settings = settings_for(tmp_path / "keys.json", f"sqlite:///{tmp_path / 'd.db'}",
                            "127.0.0.1:1", "127.0.0.1:1", max_body_bytes=100)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/scores", json={"application": {"x": "y" * 200}},
                             headers={"X-API-Key": keys["all"]})  # fmt: skip
        assert answer.status_code == 413
