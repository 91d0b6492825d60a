"""Container HEALTHCHECK of a gRPC service: the standard grpc.health.v1 Check on loopback.

Not named grpc_health.py: run as a script, its folder comes first on sys.path, and that name
would shadow the grpc_health package it imports (the check then always failed).

Usage: python /usr/local/bin/grpc_healthcheck.py PORT [SERVICE [TLS_DIR NAME]]; exit 0 when
SERVING. With TLS_DIR (the chart's grpc.tls.enabled): mTLS with TLS_DIR's ca.crt, tls.crt and
tls.key, the server's certificate checked against NAME.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

port = sys.argv[1]
service = sys.argv[2] if len(sys.argv) > 2 else ""
target = f"127.0.0.1:{port}"
if len(sys.argv) > 4:
    folder = sys.argv[3]

    def read(name: str) -> bytes:
        with open(f"{folder}/{name}", "rb") as handle:
            return handle.read()

    credentials = grpc.ssl_channel_credentials(read("ca.crt"), read("tls.key"), read("tls.crt"))
    options = [("grpc.ssl_target_name_override", sys.argv[4])]
    channel = grpc.secure_channel(target, credentials, options=options)
else:
    channel = grpc.insecure_channel(target)
with channel:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
sys.exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)
