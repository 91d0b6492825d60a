"""The gateway's edge: a request under ``/v1`` is authenticated before a byte of its body is
read, and its body is capped.

FastAPI reads and parses a route's JSON body before it runs the route's dependencies, so
with authentication as a dependency alone a caller without a key could make the gateway
read and parse any amount of JSON (and learn from a 422 that the route exists). This pure
ASGI middleware checks that ``X-API-Key`` names a known, unrevoked key from the headers
only; scopes and the rate limit stay in ``auth.require``. Then the body may not exceed
``max_body_bytes``: a ``Content-Length`` over it is refused before reading, a chunked body
is counted as it arrives and refused once over. Both answer problem+json (401, 413), through
``errors.problem_response`` like every other error. The whole body must arrive within
``body_timeout`` seconds of the headers (408 after it).

Before the app, ``EdgeHttpProtocol`` (uvicorn's httptools protocol) bounds what a
connection may make the server hold before a request exists: its request line and headers
together at most ``GATEWAY_MAX_HEADER_BYTES`` (431 and closed above: uvicorn itself has no
limit with httptools, and took 8 MB of headers), sent within
``GATEWAY_HEADER_TIMEOUT_SECONDS`` of its first byte or of connecting (closed after it:
uvicorn waited for a partial header for ever). ``server_config`` wires both, with
uvicorn's keep-alive timeout and concurrency limit, from the gateway's settings.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
import uvicorn
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.gateway.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE, problem_response
from services.gateway.keys import hash_key
from services.gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

PROTECTED_PREFIX = "/v1/"
UNAUTHENTICATED = {"WWW-Authenticate": "ApiKey"}


class EdgeGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        plain = headers.get("x-api-key")
        refusal: tuple[int, str, str | None, dict[str, str]] | None = None
        if not plain:
            refusal = (
                401,
                "missing API key (X-API-Key header)",
                "unauthenticated",
                UNAUTHENTICATED,
            )
        elif scope["app"].state.auth.keys.get(hash_key(plain)) is None:
            refusal = (401, "unknown API key", "unauthenticated", UNAUTHENTICATED)
        else:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or len(length) > 18):
                refusal = (400, "invalid Content-Length", "bad-request", {})
            elif length is not None and int(length) > self.max_body_bytes:
                refusal = (413, self._too_large(), None, {})
        if refusal is not None:
            status, detail, slug, extra = refusal
            response = problem_response(
                Request(scope), status, detail, slug=slug, headers={**extra, "Connection": "close"}
            )
            # The body is never read: the connection is closed instead of drained.
            await response(scope, receive, send)
            return
        await self.app(scope, self._capped(receive), send)

    def _too_large(self) -> str:
        return f"the request body exceeds {self.max_body_bytes} bytes"

    def _capped(self, receive: Receive) -> Receive:
        received = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + self.body_timeout

        async def capped() -> Message:
            nonlocal received, complete
            if complete:  # after the body, only a disconnect can come: no deadline
                return await receive()
            try:
                remaining = deadline - asyncio.get_running_loop().time()
                message = await asyncio.wait_for(receive(), max(remaining, 0.0))
            except TimeoutError:
                # Re-raised by FastAPI's body reader, answered by errors' handler.
                raise HTTPException(
                    408,
                    f"the request body did not arrive within {self.body_timeout:g} s",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, self._too_large())
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        return capped


def _head_too_large(limit: int) -> bytes:
    body = json.dumps(
        {
            "type": PROBLEM_TYPE + "request-header-fields-too-large",
            "title": "Request Header Fields Too Large",
            "status": 431,
            "detail": f"the request line and headers exceed {limit} bytes",
        }
    ).encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


class _HeadTooLarge(Exception):
    pass


class EdgeHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size limit and a deadline on each request's
    line and headers (``EdgeConfig.max_header_bytes``, ``header_timeout``)."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.max_head = int(getattr(config, "max_header_bytes", 16_384))
        self.head_timeout = float(getattr(config, "header_timeout", 10.0))
        self.in_head = True  # waiting for a request's line and headers
        self.head_bytes = 0
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_refused = False

    def _arm(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.in_head and not self.transport.is_closing():
            log.info("edge_header_timeout", seconds=self.head_timeout)
            self.transport.close()

    def _refuse_head(self) -> None:
        self.head_refused = True
        self._disarm()
        log.info("edge_header_too_large", limit=self.max_head)
        if not self.transport.is_closing():
            self.transport.write(_head_too_large(self.max_head))
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head_refused:
            return
        was_in_head = self.in_head
        super().data_received(data)
        if was_in_head and self.in_head and not self.head_refused:
            # No end of headers in this chunk: all of it was head, buffered by the parser.
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head:
                self._refuse_head()

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.max_head:
            raise _HeadTooLarge  # stops the parser; answered by send_400_response below

    def on_message_begin(self) -> None:
        self.in_head, self.head_bytes = True, 0
        self._arm()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head, self.head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        if self.head_bytes > self.max_head:
            self._refuse_head()
        else:
            super().send_400_response(msg)


class EdgeConfig(uvicorn.Config):
    """uvicorn's configuration plus what ``EdgeHttpProtocol`` reads."""

    def __init__(
        self, app: Any, *, max_header_bytes: int, header_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout


def server_config(app: Any, settings: GatewaySettings, **overrides: Any) -> EdgeConfig:
    """The one uvicorn configuration of the gateway (``python -m services.gateway`` and the
    tests' real servers): its edge limits from ``settings``."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "workers": 1,
        "http": EdgeHttpProtocol,
        # h11 is not used (httptools is), but should it be: the same header limit.
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.limit_concurrency,
        # The access log is ours (structured, with route and key id); uvicorn's is off.
        "access_log": False,
        "log_config": None,
        **overrides,
    }
    return EdgeConfig(
        app,
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout_seconds,
        **options,
    )
