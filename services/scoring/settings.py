"""Settings of the scoring service (SCORING_ prefix; MLFLOW_TRACKING_URI, MODEL_NAME and the
feature store's own settings are shared)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import GrpcServiceSettings


class ScoringSettings(GrpcServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCORING_", extra="ignore", populate_by_name=True)

    port: int = 50051
    metrics_port: int = 9101
    model_alias: str = "champion"
    # A Score is ~0.7 ms of Python: a second worker thread only adds GIL hand-offs (measured
    # through the gateway, 16 clients: 1 worker 456-514 req/s, 2 workers 416-435 req/s).
    max_workers: int = 1
    poll_seconds: float = Field(10.0, gt=0, description="How often the alias is checked.")
    # Each item carries its ~220 feature values (~5.3 kB): 1000 items overflow the 4 MB a
    # default gRPC client accepts; 500 leave room for a model with more features.
    max_batch: int = Field(500, gt=0, description="Clients in one ScoreBatch call.")
    # Decisions this close to the threshold are `review` (an underwriter decides). Off by
    # default: partners must handle the third decision before an operator turns it on.
    review_band: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Half-width of the human-review band around the threshold, in "
        "probability (0.02 = 2 percentage points): |probability - threshold| < band is "
        "`review`. 0 turns it off.",
    )
    # A model holding this alias scores every request in shadow (logged, never returned);
    # empty turns shadow scoring off. No model holding it costs one registry call per poll.
    challenger_alias: str = Field(
        "challenger", description="MLflow alias of the challenger scored in shadow ('' = none)."
    )
