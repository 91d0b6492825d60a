"""Container HEALTHCHECK of a gRPC service: the standard grpc.health.v1 Check on loopback.

Not named grpc_health.py: run as a script, its folder comes first on sys.path, and that name
would shadow the grpc_health package it imports (the check then always failed).

Usage: python /usr/local/bin/grpc_healthcheck.py PORT [SERVICE]; exit 0 when SERVING.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

port = sys.argv[1]
service = sys.argv[2] if len(sys.argv) > 2 else ""
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
sys.exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)
