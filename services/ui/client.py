"""The gateway over HTTP: one method per endpoint, every failure turned into a typed
``GatewayError`` whose ``kind`` the dashboard words for the advisor (texts.ERRORS)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import httpx

log = logging.getLogger(__name__)

ErrorKind = Literal[
    "not_found", "invalid", "unavailable", "timeout", "auth", "rate_limited", "error"
]


class GatewayError(Exception):
    def __init__(self, kind: ErrorKind, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{kind} ({status}): {detail}")
        self.kind, self.detail, self.status = kind, detail, status


def _kind(status: int) -> ErrorKind:
    if status == 404:
        return "not_found"
    if status in (400, 422):
        return "invalid"
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status in (502, 503, 504):
        return "unavailable"
    return "error"


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 20.0,
        advisor: Callable[[], str | None] | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"X-API-Key": api_key}, timeout=timeout
        )
        # Who is acting (the signed-in advisor), sent as X-Advisor with every call: the
        # gateway logs it with the decisions made under the dashboard's one key.
        self._advisor = advisor or (lambda: None)
        self._limits: dict[str, tuple[float | None, float | None]] | None = None

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        advisor = self._advisor()
        if advisor:
            kwargs["headers"] = {**kwargs.get("headers", {}), "X-Advisor": advisor}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise GatewayError("timeout", str(error)) from error
        except httpx.HTTPError as error:  # refused connection, DNS, protocol...
            raise GatewayError("unavailable", str(error)) from error
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", ""))
            except ValueError:
                detail = response.text[:200]
            # Logged for operators; the advisor sees a worded message, not this detail.
            log.warning("gateway %s %s -> %s: %s", method, path, response.status_code, detail)
            raise GatewayError(_kind(response.status_code), detail, response.status_code)
        return response.json()

    def score(self, client_id: int) -> dict[str, Any]:
        return self._call("POST", "/v1/scores", json={"client_id": client_id})

    def simulate(self, application: dict[str, Any]) -> dict[str, Any]:
        # simulation=true: the gateway logs it flagged, never as a real decision.
        return self._call(
            "POST", "/v1/scores", json={"application": application, "simulation": True}
        )

    def profile(self, client_id: int, lang: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/clients/{client_id}", params={"lang": lang})

    def explanation(self, client_id: int, lang: str, top_k: int = 10) -> dict[str, Any]:
        return self._call(
            "GET", f"/v1/clients/{client_id}/explanation", params={"lang": lang, "top_k": top_k}
        )

    def explain_application(
        self, application: dict[str, Any], lang: str, top_k: int = 10
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            "/v1/explanations",
            json={"application": application, "lang": lang, "top_k": top_k},
        )

    def model(self, lang: str) -> dict[str, Any]:
        return self._call("GET", "/v1/model", params={"lang": lang})

    def population(self, feature: str, lang: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/population/features/{feature}", params={"lang": lang})

    def neighbours(self, client_id: int, features: list[str]) -> dict[str, Any]:
        """The similar clients' default rate and their (anonymous) values of ``features``."""
        return self._call(
            "GET", f"/v1/clients/{client_id}/neighbours", params={"features": features}
        )

    def search_clients(self, prefix: str, limit: int = 10) -> dict[str, Any]:
        """Stored clients whose number starts with ``prefix`` (1 to 12 digits):
        ``{"prefix": ..., "clients": [ids ascending]}``."""
        return self._call("GET", "/v1/clients", params={"prefix": prefix, "limit": limit})

    def score_distribution(self) -> dict[str, Any]:
        """The champion's probabilities over its reference population, by outcome, with
        the threshold: ``{"model_version", "threshold", "n", "source", "bins": [...]}``."""
        return self._call("GET", "/v1/population/scores")

    def recent_decisions(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/decisions", params={"limit": limit})

    def limits(self) -> dict[str, tuple[float | None, float | None]]:
        """The bounds of each field of a new application, as the gateway's own OpenAPI
        schema states them (``minimum``/``maximum``): what-if values are checked against
        what the API accepts before they are sent. Read once; {} while unreachable."""
        if self._limits is None:
            try:
                schema = self._call("GET", "/openapi.json")
                fields = schema["components"]["schemas"]["Application"]["properties"]
            except (GatewayError, KeyError, TypeError):
                return {}
            self._limits = {}
            # The typed fields by wire name (lower case), then the other numeric application
            # columns the ``numeric_fields`` map accepts, by Kaggle column (upper case).
            extra = fields.get("numeric_fields", {}).get("properties", {})
            for name, spec in [*fields.items(), *extra.items()]:
                options = spec.get("anyOf", [spec])  # optional fields: [number, null]
                low = next((o["minimum"] for o in options if "minimum" in o), None)
                high = next((o["maximum"] for o in options if "maximum" in o), None)
                self._limits[name] = (low, high)
        return self._limits

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False
