"""gRPC server reflection is off unless enabled (issue 17): it would list the API to anyone
who reaches the port. A real server on loopback, with and without it."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from services.common.server import build_server
from services.scoring.settings import ScoringSettings
from tests.stack import free_port


def services_listed(enabled: bool) -> set[str]:
    address = f"127.0.0.1:{free_port()}"
    server, _ = build_server(
        address=address,
        service_names=["credit.v1.ScoringService"],
        register=lambda s: None,
        max_workers=1,
        reflection_enabled=enabled,
    )
    server.start()
    try:
        with grpc.insecure_channel(address) as channel:
            return set(ProtoReflectionDescriptorDatabase(channel).get_services())
    finally:
        server.stop(None)


def test_reflection_is_off_by_default_and_on_when_enabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SCORING_REFLECTION", raising=False)
    assert ScoringSettings().reflection is False
    monkeypatch.setenv("SCORING_REFLECTION", "true")
    assert ScoringSettings().reflection is True
    with pytest.raises(grpc.RpcError) as refused:
        services_listed(False)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "grpc.health.v1.Health" in services_listed(True)
