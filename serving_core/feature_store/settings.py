"""Where the feature store lives, read from the environment: one typed object, two setups.

``ONLINE_STORE=sqlite`` (default) keeps everything in files under ``data/feature_store`` so a
laptop or CI job needs no server; ``redis`` / ``redis-cluster`` / ``redis-sentinel`` is
production. The Feast ``RepoConfig`` is built from these settings instead of a hand-edited
YAML, so the services, the CronJob and the tests cannot drift apart; ``write_yaml`` renders
the same config for the ``feast`` CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

OnlineStoreKind = Literal["sqlite", "redis", "redis-cluster", "redis-sentinel"]


def feast_redis_connection(url: str) -> str:
    """``redis://[user:pass@]host:port/db`` (the usual REDIS_URL) -> Feast's
    ``host:port,db=N,password=...`` form; a string already in Feast's form passes through."""
    if "://" not in url:
        return url
    parsed = urlparse(url)
    parts = [f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"]
    database = parsed.path.lstrip("/")
    if database:
        parts.append(f"db={int(database)}")
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


class FeatureStoreSettings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    online_store: OnlineStoreKind = Field(
        "sqlite", validation_alias=AliasChoices("ONLINE_STORE", "online_store")
    )
    project: str = Field(
        "credit_scoring", validation_alias=AliasChoices("FEAST_PROJECT", "project")
    )
    # Registry, SQLite online store and the offline Parquet export all live here. Not named
    # data_dir: with populate_by_name a field's name is an environment name too, and DATA_DIR
    # is the Kaggle input folder (PlatformSettings.data_dir), which this folder was written to.
    store_dir: Path = Field(Path("data/feature_store"), validation_alias="FEATURE_STORE_DIR")
    redis_connection: str = Field(
        "localhost:6379",
        validation_alias=AliasChoices(
            "FEAST_REDIS_CONNECTION_STRING", "REDIS_URL", "redis_connection"
        ),
    )
    # With redis-sentinel, redis_connection lists the Sentinels (host:port,host:port,...)
    # and this names the master they watch; clients follow it through a failover.
    redis_sentinel_master: str = Field(
        "mymaster",
        validation_alias=AliasChoices("REDIS_SENTINEL_MASTER", "redis_sentinel_master"),
    )
    # Redis expiry of a client's hash; None keeps clients until the next materialisation
    # overwrites them (the reader enforces the views' TTLs itself, see reader.py).
    redis_key_ttl_seconds: int | None = Field(
        None, validation_alias=AliasChoices("FEAST_REDIS_KEY_TTL", "redis_key_ttl_seconds")
    )
    # A full snapshot load is always the newest value, so skipping Feast's read-before-write
    # timestamp check halves Redis round trips; off for incremental writers.
    redis_skip_dedup: bool = False
    # Serving processes poll the registry this often for new model feature services.
    registry_cache_ttl_seconds: int = 60

    def __init__(self, *, data_dir: Path | str | None = None, **values: Any) -> None:
        # ``data_dir=`` stays a Python keyword (callers and tests use it) without being an
        # environment name again: it is mapped here, before the sources are read.
        if data_dir is not None:
            if "store_dir" in values:
                raise TypeError("give store_dir or data_dir, not both")
            values["store_dir"] = data_dir
        super().__init__(**values)

    @property
    def data_dir(self) -> Path:
        """The old name of ``store_dir``, kept for readers."""
        return self.store_dir

    @property
    def registry_path(self) -> Path:
        return self.store_dir / "registry.db"

    @property
    def sqlite_path(self) -> Path:
        return self.store_dir / "online.db"

    @property
    def offline_dir(self) -> Path:
        return self.store_dir / "offline"

    @property
    def is_redis(self) -> bool:
        return self.online_store != "sqlite"

    def online_store_config(self) -> dict[str, Any]:
        if not self.is_redis:
            return {"type": "sqlite", "path": str(self.sqlite_path.resolve())}
        connection = feast_redis_connection(self.redis_connection)
        if self.online_store == "redis-cluster":
            # Cluster nodes refuse SELECT: a db from a shared REDIS_URL must not reach them.
            connection = ",".join(p for p in connection.split(",") if not p.startswith("db="))
        redis_type = {"redis-cluster": "redis_cluster", "redis-sentinel": "redis_sentinel"}
        config: dict[str, Any] = {
            "type": "redis",
            "redis_type": redis_type.get(self.online_store, "redis"),
            "connection_string": connection,
            "skip_dedup": self.redis_skip_dedup,
        }
        if self.online_store == "redis-sentinel":
            config["sentinel_master"] = self.redis_sentinel_master
        if self.redis_key_ttl_seconds:
            config["key_ttl_seconds"] = self.redis_key_ttl_seconds
        return config

    def config_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "provider": "local",
            "registry": {
                "registry_type": "file",
                "path": str(self.registry_path.resolve()),
                "cache_ttl_seconds": self.registry_cache_ttl_seconds,
            },
            "online_store": self.online_store_config(),
            "offline_store": {"type": "file"},
            "entity_key_serialization_version": 3,
        }

    def repo_config(self) -> RepoConfig:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        return RepoConfig(**self.config_dict(), repo_path=self.store_dir.resolve())

    def write_yaml(self, path: Path) -> Path:
        """feature_store.yaml for the ``feast`` CLI, rendered from these settings."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.config_dict(), sort_keys=False))
        return path


def open_store(settings: FeatureStoreSettings | None = None) -> FeatureStore:
    """The Feast store these settings describe (no network until it is read)."""
    return FeatureStore(config=(settings or FeatureStoreSettings()).repo_config())
