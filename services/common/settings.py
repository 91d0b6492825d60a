"""What every gRPC service's settings share; each service sets its prefix and ports."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from credit.settings import DEFAULT_TRACKING_URI

if TYPE_CHECKING:
    from services.common.registry import RegistrySettings


class GrpcServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int
    reflection: bool = Field(
        False,
        description="gRPC server reflection (grpcurl list): off unless enabled, it maps the "
        "API for anyone who reaches the port. make up enables it locally.",
    )
    metrics_port: int
    # Handlers are CPU-bound Python: more threads than cores only add GIL contention
    # (measured: 8 workers 185 Score/s at 8 callers, 2 workers 293/s). Scale with replicas.
    max_workers: int = 2
    # Shared by every process of the platform, hence no service prefix.
    tracking_uri: str = Field(
        DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "tracking_uri"),
    )
    model_name: str = Field(
        "credit-default", validation_alias=AliasChoices("MODEL_NAME", "model_name")
    )
    cache_dir: Path = Field(
        Path(tempfile.gettempdir()) / "credit-models",
        description="Where registered model versions are downloaded.",
    )
    log_format: str = Field("json", validation_alias=AliasChoices("LOG_FORMAT", "log_format"))
    # gRPC mTLS (chart: grpc.tls.enabled): all three set, or none (plaintext).
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) this server presents (mTLS)."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None,
        description="PEM CA a client's certificate must chain to: a caller without such a "
        "certificate is refused at the handshake.",
    )
    max_connection_age_seconds: float = Field(
        30.0,
        gt=0,
        description="A client connection is closed (GOAWAY, calls in flight finish) after "
        "about this long, so that the gateway re-resolves the headless Service and spreads "
        "its calls over replicas added since (gRPC resolves DNS only when a connection ends).",
    )
    # How often the online store's completeness markers (and probe clients) are re-read; a
    # read that finds no client re-reads the markers at once in any case.
    feature_store_check_seconds: float = Field(3.0, gt=0)

    @model_validator(mode="after")
    def _tls_whole(self) -> GrpcServiceSettings:
        given = [self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file]
        if any(given) and not all(given):
            raise ValueError("mTLS needs tls_cert_file, tls_key_file and tls_client_ca_file")
        return self

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """mTLS credentials requiring a client certificate signed by tls_client_ca_file, or
        None (plaintext) when TLS is not configured."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        assert self.tls_client_ca_file is not None
        return grpc.ssl_server_credentials(
            [(self.tls_key_file.read_bytes(), self.tls_cert_file.read_bytes())],
            root_certificates=self.tls_client_ca_file.read_bytes(),
            require_client_auth=True,
        )

    def server_options(self) -> dict[str, Any]:
        """The keyword arguments of ``services.common.server.build_server`` that these
        settings decide (address, workers, reflection, mTLS, connection age): every gRPC
        service builds its server from them the same way."""
        return {
            "address": f"{self.host}:{self.port}",
            "max_workers": self.max_workers,
            "reflection_enabled": self.reflection,
            "credentials": self.server_credentials(),
            "max_connection_age_seconds": self.max_connection_age_seconds,
        }

    def registry_settings(self, alias: str = "champion") -> RegistrySettings:
        """Where this service finds its models in the MLflow registry."""
        from services.common.registry import RegistrySettings

        return RegistrySettings(
            tracking_uri=self.tracking_uri,
            model_name=self.model_name,
            alias=alias,
            cache_dir=self.cache_dir,
        )
