"""`make up` / `make down`: run the platform's services in the background on this machine.

Each service is a child process in its own session (so `make down` can stop it and its
children), with its log in ``.run/<name>.log`` and its pid in ``.run/<name>.pid``. Starting
waits until the service says it is ready (gRPC health SERVING, or HTTP 200 on its
readiness URL), so `make up` ends with everything usable or with a clear error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

RUN_DIR = Path(".run")


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    ready: Callable[[], bool]
    url: str


def grpc_serving(address: str, service: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with grpc.insecure_channel(address) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        except grpc.RpcError:
            return False

    return check


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    return check


def services() -> list[Service]:
    python = sys.executable
    scoring = f"127.0.0.1:{os.environ.get('SCORING_PORT', '50051')}"
    explainer = f"127.0.0.1:{os.environ.get('EXPLAINER_PORT', '50052')}"
    gateway = f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8000')}"
    ui = f"http://127.0.0.1:{os.environ.get('UI_PORT', '7860')}/"
    return [
        Service(
            "scoring",
            [python, "-m", "services.scoring"],
            grpc_serving(scoring, "credit.v1.ScoringService"),
            f"grpc://{scoring}",
        ),
        Service(
            "explainer",
            [python, "-m", "services.explainer"],
            grpc_serving(explainer, "credit.v1.ExplainerService"),
            f"grpc://{explainer}",
        ),
        Service(
            "gateway", [python, "-m", "services.gateway"], http_ok(f"{gateway}/readyz"), gateway
        ),
        Service("ui", [python, "-m", "services.ui"], http_ok(ui), ui),
    ]


def _pid(name: str) -> int | None:
    path = RUN_DIR / f"{name}.pid"
    if not path.is_file():
        return None
    pid = int(path.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink()
        return None
    return pid


def start(timeout: float = 120.0) -> list[Service]:
    """Start every service not already running; wait until all are ready."""
    RUN_DIR.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "LOG_FORMAT": "json",
        # The local stack is the explicit development mode: the dashboard may use its
        # demo account (advisor/demo) when UI_USERS is unset. Nowhere else.
        "UI_DEV_MODE": os.environ.get("UI_DEV_MODE", "true"),
        # grpcurl on a developer's machine; off by default everywhere else.
        "SCORING_REFLECTION": os.environ.get("SCORING_REFLECTION", "true"),
        "EXPLAINER_REFLECTION": os.environ.get("EXPLAINER_REFLECTION", "true"),
    }
    children: dict[str, subprocess.Popen[bytes]] = {}
    for service in services():
        if _pid(service.name) is not None:
            continue
        log = (RUN_DIR / f"{service.name}.log").open("ab")
        child = subprocess.Popen(
            service.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        (RUN_DIR / f"{service.name}.pid").write_text(str(child.pid))
        children[service.name] = child
    deadline = time.monotonic() + timeout
    for service in services():
        while not service.ready():
            started = children.get(service.name)
            if (started is not None and started.poll() is not None) or _pid(service.name) is None:
                (RUN_DIR / f"{service.name}.pid").unlink(missing_ok=True)
                raise RuntimeError(f"{service.name} exited: see {RUN_DIR / service.name}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{service.name} not ready after {timeout:.0f} s: "
                    f"see {RUN_DIR / service.name}.log"
                )
            time.sleep(0.5)
    return services()


def stop(timeout: float = 15.0) -> list[str]:
    """Stop every service `start` left running (SIGTERM, then SIGKILL after ``timeout``)."""
    stopped = []
    for service in reversed(services()):
        pid = _pid(service.name)
        if pid is None:
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid(service.name) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid(service.name) is not None:
            os.killpg(pid, signal.SIGKILL)
        (RUN_DIR / f"{service.name}.pid").unlink(missing_ok=True)
        stopped.append(service.name)
    return stopped
