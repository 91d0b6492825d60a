"""Settings of the explainer service (EXPLAINER_ prefix; MLFLOW_TRACKING_URI and MODEL_NAME
are shared)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import GrpcServiceSettings


class ExplainerSettings(GrpcServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="EXPLAINER_", extra="ignore", populate_by_name=True
    )

    port: int = 50052
    metrics_port: int = 9102
    cached_versions: int = Field(3, gt=0, description="Model versions kept in memory.")
