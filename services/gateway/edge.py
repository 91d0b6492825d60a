"""The gateway's edge: a request under ``/v1`` is authenticated before a byte of its body is
read, and its body is capped.

FastAPI reads and parses a route's JSON body before it runs the route's dependencies, so
with authentication as a dependency alone a caller without a key could make the gateway
read and parse any amount of JSON (and learn from a 422 that the route exists). This pure
ASGI middleware checks that ``X-API-Key`` names a known, unrevoked key from the headers
only; scopes and the rate limit stay in ``auth.require``. Then the body may not exceed
``max_body_bytes``: a ``Content-Length`` over it is refused before reading, a chunked body
is counted as it arrives and refused once over. Both answer problem+json (401, 413), through
``errors.problem_response`` like every other error.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import problem_response
from services.gateway.keys import hash_key

PROTECTED_PREFIX = "/v1/"
UNAUTHENTICATED = {"WWW-Authenticate": "ApiKey"}


class EdgeGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        plain = headers.get("x-api-key")
        refusal: tuple[int, str, str | None, dict[str, str]] | None = None
        if not plain:
            refusal = (401, "missing API key (X-API-Key header)", "unauthenticated",
                       UNAUTHENTICATED)  # fmt: skip
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
            response = problem_response(Request(scope), status, detail, slug=slug,
                                        headers={**extra, "Connection": "close"})  # fmt: skip
            # The body is never read: the connection is closed instead of drained.
            await response(scope, receive, send)
            return
        await self.app(scope, self._capped(receive), send)

    def _too_large(self) -> str:
        return f"the request body exceeds {self.max_body_bytes} bytes"

    def _capped(self, receive: Receive) -> Receive:
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Re-raised by FastAPI's body reader, answered by errors' handler.
                    raise HTTPException(413, self._too_large())
            return message

        return capped
