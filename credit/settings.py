"""Settings of the offline jobs (data, training, benchmarks), read from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Kaggle's split: 307,511 train + 48,744 test applications.
KAGGLE_CLIENTS = 356_255
# The one MLflow registry every component defaults to (jobs, services, CLI; the Makefile's
# MLFLOW_TRACKING_URI is tested equal): `credit services start` by hand after `make train`
# must find the model training registered. Relative: the checkout's mlruns/.
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"


class PlatformSettings(BaseSettings):
    """Where data and artefacts live; every field can be set by its upper-case env name."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    data_dir: Path | None = Field(
        default=None,
        description="Folder with the real Kaggle CSVs; empty means the synthetic data set.",
    )
    raw_dir: Path = Field(
        default=Path("data/raw/synthetic"), description="Where synthetic CSVs are generated."
    )
    tables_dir: Path = Field(
        default=Path("data/tables"), description="The typed Parquet tables every job reads."
    )
    artifacts_dir: Path = Field(default=Path("artifacts"), description="Training outputs.")
    features_dir: Path = Field(
        default=Path("artifacts/features"), description="features.parquet + feature_schema.json."
    )
    mlflow_tracking_uri: str = Field(
        default=DEFAULT_TRACKING_URI, description="MLflow tracking and registry store."
    )
    model_name: str = Field(default="credit-default", description="Registered model name.")
    cost_false_negative: float = Field(default=10.0, gt=0, description="Cost of a missed default.")
    cost_false_positive: float = Field(default=1.0, gt=0, description="Cost of a wrong refusal.")
    synthetic_clients: int = Field(default=20_000, ge=100, description="Synthetic set size.")
    seed: int = Field(default=42, description="Seed of the synthetic generator.")
    log_format: str = Field(default="auto", description="auto, json or console.")

    @field_validator("data_dir", mode="before")
    @classmethod
    def _empty_means_synthetic(cls, value: object) -> object:
        return None if value in ("", None) else value
