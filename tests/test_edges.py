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
    settings = settings_for(
        root / "keys.json", f"sqlite:///{root / 'd.db'}", closed, closed, retries=0
    )
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
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{key_line}Content-Length: {length}\r\n\r\n"
    )


def test_no_key_is_401_before_the_body_is_read(gateway: dict[str, Any]) -> None:
    # 2 MB announced, 1 KB sent: the answer comes without the rest (or a timeout).
    status, headers, body = raw_request(
        gateway["port"], head_for("/v1/scores", TWO_MB), b"{" * 1024
    )
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
    answer = httpx.post(
        f"{url}/v1/scores",
        content=b'{"client_id": ',
        headers={"Content-Type": "application/json", "X-API-Key": gateway["keys"]["all"]},
    )
    assert answer.status_code == 422 and "JSON" in answer.json()["detail"]


def test_a_chunked_body_over_the_limit_is_413(gateway: dict[str, Any]) -> None:
    """No Content-Length (chunked): counted as it arrives, refused once over 1 MiB."""

    def chunks() -> Iterator[bytes]:
        yield b'{"client_ids": ['
        for _ in range(200):
            yield b"100002," * 1000  # 7 KB a chunk, 1.4 MB in all
        yield b"100002]}"

    answer = httpx.post(
        f"{gateway['url']}/v1/scores/batch",
        content=chunks(),
        headers={"Content-Type": "application/json", "X-API-Key": gateway["keys"]["all"]},
        timeout=30,
    )
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


def test_health_stays_open_and_a_small_body_goes_through(gateway: dict[str, Any]) -> None:
    url = gateway["url"]
    assert httpx.get(f"{url}/healthz").status_code == 200  # no key needed
    # Under the limit, with a key: the request reaches the route (the backend is down).
    answer = httpx.post(
        f"{url}/v1/scores",
        json={"client_id": 100002},
        headers={"X-API-Key": gateway["keys"]["all"]},
        timeout=30,
    )
    assert answer.status_code == 503, answer.text


def test_the_limit_is_a_setting(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    keys = write_keys(tmp_path / "keys.json")
    settings = settings_for(
        tmp_path / "keys.json",
        f"sqlite:///{tmp_path / 'd.db'}",
        "127.0.0.1:1",
        "127.0.0.1:1",
        max_body_bytes=100,
    )
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/v1/scores", json={"application": {"x": "y" * 200}}, headers={"X-API-Key": keys["all"]}
        )
        assert answer.status_code == 413


# -- before the app: header size and read deadlines (uvicorn through edge.server_config) ----
@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The real server configuration with short deadlines, so a test waits seconds."""
    root = tmp_path_factory.mktemp("tight")
    keys = write_keys(root / "keys.json")
    closed = f"127.0.0.1:{free_port()}"
    settings = settings_for(
        root / "keys.json",
        f"sqlite:///{root / 'd.db'}",
        closed,
        closed,
        retries=0,
        header_timeout_seconds=1.5,
        body_timeout_seconds=1.5,
        max_header_bytes=8_192,
    )
    with served(settings) as (url, port):
        yield {"url": url, "port": port, "keys": keys}


def _answer_or_close(sock: socket.socket) -> bytes:
    """What the server sends before closing (b"" when it just closes)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize("shape", ["one 8 MB header", "400 headers of 100 bytes", "long URL"])
def test_oversized_headers_are_refused(tight: dict[str, Any], shape: str) -> None:
    """8 MB of headers were accepted (issue 17): now 431 problem+json and closed, whether
    the head arrives as one huge header, many small ones or a huge request line; the
    server never waits for (or buffers) the rest."""
    key = tight["keys"]["all"]
    if shape == "one 8 MB header":
        head = f"GET /v1/model HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nX-Big: ".encode()
        rest = b"a" * (8 * 1024 * 1024) + b"\r\n\r\n"
    elif shape == "400 headers of 100 bytes":
        head = f"GET /v1/model HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n".encode()
        rest = b"".join(f"X-H{i}: {'b' * 90}\r\n".encode() for i in range(400)) + b"\r\n"
    else:
        head = b"GET /healthz?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        rest = b""
    with socket.create_connection(("127.0.0.1", tight["port"]), timeout=10) as sock:
        try:
            sock.sendall(head)
            for start in range(0, len(rest), 65536):
                sock.sendall(rest[start : start + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while sending: refused, as it should be
        answer = _answer_or_close(sock)
    assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]
    if answer:  # 431 with a problem body, or nothing at all (closed): never accepted
        status_line, _, rest_of_answer = answer.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 431"), answer[:300]
        problem = json.loads(rest_of_answer.partition(b"\r\n\r\n")[2])
        assert problem["status"] == 431 and "8192" in problem["detail"]
    # The server is fine afterwards, and a normal head passes.
    assert httpx.get(f"{tight['url']}/v1/model", headers={"X-API-Key": key}).status_code == 503


@pytest.mark.parametrize("drip", [True, False])
def test_a_slow_or_silent_head_is_closed_in_time(tight: dict[str, Any], drip: bool) -> None:
    """A partial head kept open, even with a byte now and then (slowloris), or a connection
    that sends nothing: closed 1.5 s (GATEWAY_HEADER_TIMEOUT_SECONDS) after it began.
    Before, a partial header stayed open 25 s or more."""
    import time

    with socket.create_connection(("127.0.0.1", tight["port"]), timeout=10) as sock:
        started = time.monotonic()
        closed_after = None
        if drip:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        while time.monotonic() - started < 8:
            try:
                if drip:
                    sock.sendall(b"X-A: b\r\n")
                sock.settimeout(0.3)
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None, "the connection stayed open"
        assert 1.2 <= closed_after <= 3.0, closed_after


def test_a_slow_body_is_408(tight: dict[str, Any]) -> None:
    """With a valid key, a body that stops arriving: 408 problem+json once
    GATEWAY_BODY_TIMEOUT_SECONDS (1.5 s) have passed since the headers."""
    import time

    started = time.monotonic()
    status, headers, body = raw_request(
        tight["port"], head_for("/v1/scores", 100, tight["keys"]["all"]), b'{"client_id": '
    )
    elapsed = time.monotonic() - started
    assert status == 408 and headers["content-type"] == "application/problem+json", body
    assert json.loads(body)["status"] == 408 and headers.get("connection") == "close"
    assert 1.2 <= elapsed <= 4.0, elapsed


def test_edge_settings_reach_uvicorn() -> None:
    """python -m services.gateway serves with this configuration (services/gateway/__main__)."""
    from services.gateway.edge import EdgeHttpProtocol, server_config
    from services.gateway.settings import GatewaySettings

    settings = GatewaySettings(
        max_header_bytes=4096, header_timeout_seconds=3, keep_alive_seconds=7, limit_concurrency=50
    )
    config = server_config(create_app(settings), settings)
    assert config.http is EdgeHttpProtocol
    assert (config.max_header_bytes, config.header_timeout) == (4096, 3)
    assert (config.timeout_keep_alive, config.limit_concurrency) == (7, 50)
    assert config.h11_max_incomplete_event_size == 4096 and not config.access_log
