"""Settings of the REST gateway: one typed object, environment variables prefixed GATEWAY_."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8000
    scoring_address: str = "127.0.0.1:50051"
    explainer_address: str = "127.0.0.1:50052"
    # gRPC mTLS to the backends (chart: grpc.tls.enabled): all three files, or none.
    grpc_tls_ca_file: Path | None = Field(
        None, description="PEM CA the scoring and explainer certificates must chain to."
    )
    grpc_tls_cert_file: Path | None = Field(
        None, description="PEM client certificate the gateway presents to the backends."
    )
    grpc_tls_key_file: Path | None = Field(None, description="PEM key of grpc_tls_cert_file.")
    grpc_tls_server_name: str | None = Field(
        None,
        description="Name the backends' certificates are checked against, when not "
        "the host of their addresses.",
    )
    scoring_deadline_seconds: float = Field(2.0, gt=0, description="Deadline of a scoring RPC.")
    explainer_deadline_seconds: float = Field(
        15.0, gt=0, description="Deadline of an explainer RPC (a cold model version loads first)."
    )
    health_deadline_seconds: float = Field(1.0, gt=0, description="Deadline of a health check.")
    retries: int = Field(2, ge=0, le=5, description="Retries of a call that got UNAVAILABLE.")
    retry_backoff_seconds: float = Field(0.1, ge=0, description="First backoff; doubles.")
    model_cache_seconds: float = Field(
        10.0, ge=0, description="How long the champion's GetModel answer is reused."
    )
    database_url: str = Field(
        "sqlite:///data/decisions.db",
        description="Decision log (SQLAlchemy URL); postgresql+psycopg://... in production.",
    )
    decision_archive_dir: Path | None = Field(
        Path("data/decisions-archive"),
        description="Where `credit decisions archive` moved old decisions; audit reads there.",
    )
    api_keys_file: Path | None = Field(
        Path(".dev/api-keys.json"), description="JSON list of hashed API keys."
    )
    api_keys: str | None = Field(
        None, description="The same JSON list inline (e.g. from a secret); adds to the file."
    )
    max_body_bytes: int = Field(
        1_048_576,
        gt=0,
        le=64 * 1_048_576,
        description="Largest request body (413 above); a full batch is ~1 KB.",
    )
    rate_limit_redis_url: str | None = Field(
        None,
        description="Redis holding the per-key rate limit (redis://host:port/db), shared by "
        "every gateway process; unset: each process enforces the limit alone.",
    )
    # The edge before the app (uvicorn and services.gateway.edge), issue 17.
    max_header_bytes: int = Field(
        16_384,
        ge=1_024,
        le=1_048_576,
        description="Largest request line and headers together (431 and closed above).",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Time a connection has to send a request's line and headers "
        "(from its first byte, or from connecting); the connection is closed after it.",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Time a request under /v1 has to send its whole body once its "
        "headers are in (408 after it).",
    )
    keep_alive_seconds: int = Field(
        5, gt=0, le=300, description="An idle kept-alive connection is closed after it."
    )
    limit_concurrency: int | None = Field(
        1_000,
        gt=0,
        description="Connections and requests in progress beyond which new "
        "requests get 503 at once (uvicorn's limit_concurrency); empty: no limit.",
    )
    exploration_share: float = Field(
        0.0,
        ge=0,
        le=0.2,
        description="Share of would-be refusals granted at random (drawn "
        "from the decision id) and flagged exploration in the decision log, so that outcomes "
        "exist above the threshold too (credit performance report); 0: off.",
    )
    max_batch: int = Field(
        100, gt=0, le=500, description="Client ids in one batch request (scoring allows 500)."
    )
    log_format: str = Field(
        "json", validation_alias=AliasChoices("GATEWAY_LOG_FORMAT", "LOG_FORMAT")
    )

    @model_validator(mode="after")
    def _tls_whole(self) -> GatewaySettings:
        given = [self.grpc_tls_ca_file, self.grpc_tls_cert_file, self.grpc_tls_key_file]
        if any(given) and not all(given):
            raise ValueError(
                "gRPC mTLS needs grpc_tls_ca_file, grpc_tls_cert_file and grpc_tls_key_file"
            )
        return self
