"""gRPC mTLS between the gateway and the gRPC services (issue 17; chart: grpc.tls.enabled).

Real certificates made here with ``cryptography`` (a CA, the service's server certificate,
the gateway's client certificate, and a stranger's from another CA), a real gRPC server
built by ``services.common.server.build_server`` with the credentials of a real
``ScoringSettings`` (as both services build theirs), and the gateway's real channels
(``services.gateway.backends``). A caller without a certificate of the CA is refused at the
handshake; the gateway with one is served.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from services.common.server import build_server, set_serving
from services.gateway.backends import Backends
from services.gateway.settings import GatewaySettings
from services.scoring.settings import ScoringSettings

SERVICE_NAME = "scoring.credit.svc.cluster.local"


def free_port() -> int:
    # Not tests.stack's: importing it loads training and the feature store (slow).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    folder: Path,
    name: str,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    sans: list[x509.GeneralName],
) -> tuple[Path, Path]:
    """A leaf certificate for both server and client use (as cert-manager issues them)."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem_key(key))
    return cert_file, key_file


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca("credit-scoring test CA")
    (folder / "ca.crt").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = issue(
        folder,
        "scoring",
        ca,
        [
            x509.DNSName(SERVICE_NAME),
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    client_cert, client_key = issue(folder, "gateway", ca, [x509.DNSName("gateway")])
    stranger = make_ca("someone else's CA")
    stranger_cert, stranger_key = issue(folder, "stranger", stranger, [x509.DNSName("gateway")])
    return {
        "ca": folder / "ca.crt",
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
        "stranger_cert": stranger_cert,
        "stranger_key": stranger_key,
    }


@pytest.fixture(scope="module")
def tls_server(pki: dict[str, Path]) -> Iterator[str]:
    """A real gRPC server (health service), TLS with client certificates required, built
    as the scoring and explainer services build theirs."""
    port = free_port()
    settings = ScoringSettings(
        port=port,
        tls_cert_file=pki["server_cert"],
        tls_key_file=pki["server_key"],
        tls_client_ca_file=pki["ca"],
    )
    server, health = build_server(
        address=f"127.0.0.1:{port}",
        service_names=["credit.Test"],
        register=lambda _: None,
        credentials=settings.server_credentials(),
    )
    set_serving(health, ["credit.Test"], True)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def check(channel: grpc.Channel) -> grpc.StatusCode | str:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="credit.Test"), timeout=5
        )
    except grpc.RpcError as error:
        return error.code()
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_only_a_client_with_a_certificate_of_the_ca_is_served(
    tls_server: str, pki: dict[str, Path]
) -> None:
    ca = pki["ca"].read_bytes()

    def tls(cert: str | None) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=pki[f"{cert}_key"].read_bytes() if cert else None,
            certificate_chain=pki[f"{cert}_cert"].read_bytes() if cert else None,
        )
        return grpc.secure_channel(tls_server, credentials)

    with tls("client") as channel:
        assert check(channel) == "SERVING"
    # Refused at the handshake: no certificate, another CA's certificate, no TLS at all.
    with tls(None) as channel:
        assert check(channel) == grpc.StatusCode.UNAVAILABLE
    with tls("stranger") as channel:
        assert check(channel) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(tls_server) as channel:
        assert check(channel) == grpc.StatusCode.UNAVAILABLE


def test_the_gateway_channels_use_the_settings_certificates(
    tls_server: str, pki: dict[str, Path], tmp_path: Path
) -> None:
    """The gateway's Backends, as /readyz uses them: served with its client certificate
    (the server's checked against the cluster name it is addressed by); refused without."""
    port = tls_server.rsplit(":", 1)[1]

    async def serving(settings: GatewaySettings) -> tuple[bool, str]:
        backends = Backends(settings)
        backends.scoring.service = "credit.Test"
        try:
            return await backends.scoring.serving(5.0)
        finally:
            await backends.close()

    common: dict[str, Any] = {
        "explainer_address": tls_server,
        "api_keys_file": None,
        "database_url": f"sqlite:///{tmp_path / 'd.db'}",
    }
    with_tls = GatewaySettings(
        scoring_address=f"localhost:{port}",
        grpc_tls_ca_file=pki["ca"],
        grpc_tls_cert_file=pki["client_cert"],
        grpc_tls_key_file=pki["client_key"],
        grpc_tls_server_name=SERVICE_NAME,
        **common,
    )
    assert asyncio.run(serving(with_tls)) == (True, "SERVING")
    stranger = with_tls.model_copy(
        update={
            "grpc_tls_cert_file": pki["stranger_cert"],
            "grpc_tls_key_file": pki["stranger_key"],
        }
    )
    assert asyncio.run(serving(stranger)) == (False, "UNAVAILABLE")
    plaintext = GatewaySettings(scoring_address=tls_server, **common)
    assert asyncio.run(serving(plaintext)) == (False, "UNAVAILABLE")


def test_tls_settings_come_whole_and_from_the_environment(
    pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError, match="mTLS needs"):
        ScoringSettings(tls_cert_file=pki["server_cert"])
    with pytest.raises(ValidationError, match="mTLS needs"):
        GatewaySettings(grpc_tls_ca_file=pki["ca"])
    assert ScoringSettings().server_credentials() is None  # off by default: plaintext
    # The names the chart sets (helm/credit-scoring/templates/services.yaml).
    for prefix in ("SCORING", "EXPLAINER"):
        monkeypatch.setenv(f"{prefix}_TLS_CERT_FILE", str(pki["server_cert"]))
        monkeypatch.setenv(f"{prefix}_TLS_KEY_FILE", str(pki["server_key"]))
        monkeypatch.setenv(f"{prefix}_TLS_CLIENT_CA_FILE", str(pki["ca"]))
    monkeypatch.setenv("GATEWAY_GRPC_TLS_CA_FILE", str(pki["ca"]))
    monkeypatch.setenv("GATEWAY_GRPC_TLS_CERT_FILE", str(pki["client_cert"]))
    monkeypatch.setenv("GATEWAY_GRPC_TLS_KEY_FILE", str(pki["client_key"]))
    from services.explainer.settings import ExplainerSettings

    assert ScoringSettings().server_credentials() is not None
    assert ExplainerSettings().tls_client_ca_file == pki["ca"]
    assert GatewaySettings().grpc_tls_cert_file == pki["client_cert"]
