"""Redis servers of one's own, for tests and benchmarks: a single node, a cluster, a master
with a replica and Sentinels, each from Debian's binaries (redis-server, redis-cli,
redis-sentinel) on free loopback ports in a given folder, and stopped (by their process)
on leaving the context. Nothing touches a shared Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import cast

import redis


def _port_free(port: int) -> bool:
    with closing(socket.socket()) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(*, bus: bool = False) -> int:
    """A free loopback port; with ``bus``, port + 10000 (a cluster node's bus) is free too."""
    for _ in range(200):
        with closing(socket.socket()) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not bus or (port + 10000 < 65536 and _port_free(port + 10000)):
            return port
    raise RuntimeError("no free port pair")


class MissingBinary(RuntimeError):
    pass


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise MissingBinary(f"no {binary}: bash scripts/ensure-test-tools.sh installs it")
    return path


def _wait(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout} s")
        time.sleep(0.1)


@contextmanager
def _process(command: list[str], folder: Path, name: str) -> Iterator[subprocess.Popen]:
    log = (folder / f"{name}.log").open("w")
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def server_command(port: int, *extra: str) -> list[str]:
    """A redis-server on 127.0.0.1:``port`` without persistence, in the foreground."""
    return [
        require("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        *extra,
    ]


@contextmanager
def redis_server(folder: Path, *extra: str) -> Iterator[tuple[int, subprocess.Popen]]:
    """One redis-server; yields its port and process."""
    port = free_port()
    node = folder / f"node-{port}"
    node.mkdir(parents=True)
    with _process(server_command(port, *extra), node, "redis") as process:
        _wait(lambda: redis.Redis(port=port).ping(), f"redis-server :{port}")
        yield port, process


@contextmanager
def redis_cluster(folder: Path, masters: int = 3) -> Iterator[list[int]]:
    """A Redis Cluster of ``masters`` masters (no replicas), every slot assigned; yields the
    ports once every node reports ``cluster_state:ok``."""
    ports = [free_port(bus=True) for _ in range(masters)]
    with ExitStack() as stack:
        for port in ports:
            node = folder / f"cluster-{port}"
            node.mkdir(parents=True)
            command = server_command(
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            )
            stack.enter_context(_process(command, node, "redis"))
        for port in ports:
            _wait(lambda port=port: redis.Redis(port=port).ping(), f"cluster node :{port}")
        subprocess.run(
            [
                require("redis-cli"),
                "--cluster",
                "create",
                *[f"127.0.0.1:{p}" for p in ports],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def ready() -> bool:
            return all(
                cast(dict, redis.Redis(port=p).cluster("info"))["cluster_state"] == "ok"
                for p in ports
            )

        _wait(ready, "cluster", timeout=30)
        yield ports


@contextmanager
def sentinel_group(
    folder: Path, sentinels: int = 3, master_name: str = "credit"
) -> Iterator[tuple[list[int], dict[str, tuple[int, subprocess.Popen]]]]:
    """A master, one replica and ``sentinels`` Sentinels watching them (quorum 2, master
    down after 1 s); yields the Sentinels' ports and ``{"master"|"replica": (port, process)}``."""
    binary = shutil.which("redis-sentinel")
    with ExitStack() as stack:
        master = stack.enter_context(redis_server(folder))
        replica = stack.enter_context(
            redis_server(folder, "--replicaof", "127.0.0.1", str(master[0]))
        )
        _wait(
            lambda: (
                cast(dict, redis.Redis(port=replica[0]).info("replication"))["master_link_status"]
                == "up"
            ),
            "replica",
        )
        ports = []
        for _ in range(sentinels):
            port = free_port()
            node = folder / f"sentinel-{port}"
            node.mkdir()
            (node / "sentinel.conf").write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {node}\n"
                f"sentinel monitor {master_name} 127.0.0.1 {master[0]} 2\n"
                f"sentinel down-after-milliseconds {master_name} 1000\n"
                f"sentinel failover-timeout {master_name} 5000\n"
                f"sentinel parallel-syncs {master_name} 1\n"
            )
            # Debian's redis-sentinel, else redis-server in sentinel mode (the same binary).
            command = (
                [binary, str(node / "sentinel.conf")]
                if binary
                else [require("redis-server"), str(node / "sentinel.conf"), "--sentinel"]
            )
            stack.enter_context(_process(command, node, "sentinel"))
            ports.append(port)
        for port in ports:
            _wait(
                lambda port=port: (
                    redis.Redis(port=port).sentinel_master(master_name)["num-other-sentinels"]
                    == sentinels - 1
                ),
                f"sentinel :{port}",
            )
        yield ports, {"master": master, "replica": replica}
