"""Settings of the REST gateway: one typed object, environment variables prefixed GATEWAY_."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8000
    scoring_address: str = "127.0.0.1:50051"
    explainer_address: str = "127.0.0.1:50052"
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
        1_048_576, gt=0, le=64 * 1_048_576,
        description="Largest request body (413 above); a full batch is ~1 KB.",
    )  # fmt: skip
    rate_limit_redis_url: str | None = Field(
        None,
        description="Redis holding the per-key rate limit (redis://host:port/db), shared by "
        "every gateway process; unset: each process enforces the limit alone.",
    )
    max_batch: int = Field(
        100, gt=0, le=500, description="Client ids in one batch request (scoring allows 500)."
    )
    log_format: str = Field(
        "json", validation_alias=AliasChoices("GATEWAY_LOG_FORMAT", "LOG_FORMAT")
    )
