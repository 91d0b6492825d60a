"""The Helm chart's pods, run as Docker containers on this one host (no cluster here).

What ``helm template`` renders is taken as it is: for each Deployment or Job, the pod's
containers run from the rendered image with the rendered command and args, the environment
of ``env``/``envFrom`` (ConfigMaps, Secrets), the rendered volumes (a PersistentVolumeClaim
or emptyDir is a host folder, a Secret or ConfigMap volume its files, mounted read-only as
rendered, ``subPath`` honoured), the pod's user, group and ``fsGroup``, a read-only root file
system, dropped capabilities, no privilege escalation and the memory/CPU limits. Probes are
sent as the kubelet would (gRPC health, HTTP GET, TCP), with the rendered thresholds.

Kubernetes networking is stood in for by one private network namespace (``PodNetwork``): a
pause container with only a loopback interface, which every container joins, so that
nothing they do leaves the machine or meets a port of the host's own services (a developer's
``make up`` stack can keep running). Each Service name resolves to 127.0.0.1 inside it, so
``scoring:50051`` reaches the scoring container, and so does the gateway's
``dns:///scoring-headless.credit-scoring.svc.cluster.local:50051`` (gRPC's DNS resolver reads
the hosts file too); hence one replica per Deployment (two would want one port). The test
reaches in the way the kubelet and an Ingress would: its probes and requests run in that
namespace (``PodNetwork.run``, ``nsenter``). What this does not exercise (scheduling,
Service load balancing, HPA, PDB, NetworkPolicy enforcement, Ingress) is listed in the
README's deployment section with how each is covered instead.
"""

from __future__ import annotations

import base64
import ctypes
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

HOST = "127.0.0.1"
# The images' own HEALTHCHECK script: grpc.health.v1 Check on loopback.
GRPC_HEALTH = Path(__file__).resolve().parents[2] / "docker" / "grpc_healthcheck.py"
# Kinds run here (Deployment, Job) and kinds that are not: read for their contents only
# (ConfigMap, Secret, Service) or not applicable on one host (listed in the README). A kind in
# neither set is reported, so that a new kind in the chart is not silently left out.
RUN = {"Deployment", "Job"}
NOT_RUN = {
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
    "ServiceMonitor",
    "PrometheusRule",
    "CronJob",
    "StatefulSet",
}


class PodFailed(RuntimeError):
    """A container exited with an error, or a probe never succeeded."""


def _quantity_bytes(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


def _cpus(value: str) -> float:
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) != 0


CLONE_NEWNET = 0x40000000


def _enter_network(pid: int) -> None:
    """Move the calling thread (only it: Linux namespaces are per thread) into ``pid``'s
    network namespace; sockets it then opens live there."""
    descriptor = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(descriptor, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the pod network failed")
    finally:
        os.close(descriptor)


class PodNetwork:
    """A network namespace with only a loopback interface, held by a pause container."""

    def __init__(self, image: str, run_id: str, hosts: list[str]) -> None:
        self.name = f"credit-e2e-{run_id}-pause"
        args = [
            "docker",
            "run",
            "-d",
            "--name",
            self.name,
            "--network",
            "none",
            "--label",
            f"credit-e2e={run_id}",
            "--entrypoint",
            "sleep",
        ]
        for host in hosts:
            args += ["--add-host", f"{host}:{HOST}"]
        subprocess.run([*args, image, "infinity"], check=True, capture_output=True)
        self.pid = int(
            subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Pid}}", self.name],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        self._thread = ThreadPoolExecutor(1, initializer=_enter_network, initargs=(self.pid,))

    @property
    def docker_mode(self) -> str:
        return f"container:{self.name}"

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function`` called in the pod network (plain-Python sockets: urllib, httpx,
        psycopg, redis-py; not gRPC's, whose I/O threads stay in the host's)."""
        return self._thread.submit(function, *args, **kwargs).result()

    def command(self, *args: str, user: str | None = None) -> list[str]:
        """A host command line that runs inside the pod network."""
        prefix = ["nsenter", f"--net=/proc/{self.pid}/ns/net"]
        if user:
            prefix += ["--setuid", str(_uid(user)), "--setgid", str(_gid(user))]
        return [*prefix, *args]

    def close(self) -> None:
        self._thread.shutdown(wait=False)


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def _gid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


@dataclass
class Container:
    """One running (or finished) container and the rendered spec it came from."""

    name: str
    docker_name: str
    spec: dict[str, Any]
    started: float

    def port(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        for item in self.spec.get("ports", []):
            if item.get("name") == port:
                return int(item["containerPort"])
        raise KeyError(f"{self.name}: no port named {port!r}")


@dataclass
class Cluster:
    """The rendered objects, and the containers started from them."""

    objects: list[dict[str, Any]]
    root: Path
    profile: str = ""
    namespace: str = "credit-scoring"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    containers: list[Container] = field(default_factory=list)
    network: PodNetwork | None = None

    def open_network(self, pause_image: str) -> PodNetwork:
        self.network = PodNetwork(pause_image, self.run_id, self.service_names())
        return self.network

    # --- the rendered objects ---------------------------------------------------------------

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} is not in the render")

    def unknown_kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects} - RUN - NOT_RUN

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def _secret_data(self, name: str) -> dict[str, str]:
        secret = self.get("Secret", name)
        data = dict(secret.get("stringData") or {})
        for key, value in (secret.get("data") or {}).items():
            data[key] = base64.b64decode(value).decode()
        return data

    def _config_data(self, name: str) -> dict[str, str]:
        return dict(self.get("ConfigMap", name).get("data") or {})

    def service_names(self) -> list[str]:
        names = []
        for svc in self.of_kind("Service"):
            name = svc["metadata"]["name"]
            names += [
                name,
                f"{name}.{self.namespace}.svc",
                f"{name}.{self.namespace}.svc.cluster.local",
            ]
        return names

    # --- one container's docker run arguments ----------------------------------------------

    def environment(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(self._config_data(source["configMapRef"]["name"]))
            elif "secretRef" in source:
                env.update(self._secret_data(source["secretRef"]["name"]))
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = item["valueFrom"]
            if "secretKeyRef" in ref:
                env[item["name"]] = self._secret_data(ref["secretKeyRef"]["name"])[
                    ref["secretKeyRef"]["key"]
                ]
            elif "configMapKeyRef" in ref:
                env[item["name"]] = self._config_data(ref["configMapKeyRef"]["name"])[
                    ref["configMapKeyRef"]["key"]
                ]
            else:
                raise NotImplementedError(f"env {item['name']}: {ref}")
        return env

    def _volume_source(
        self, pod_name: str, volume: dict[str, Any], owner: tuple[int, int]
    ) -> tuple[Path, bool]:
        """The host folder standing in for one pod volume, and whether it is read-only."""
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            path = self.root / "volumes" / claim["claimName"]
            read_only = bool(claim.get("readOnly"))
        elif "emptyDir" in volume:
            path = self.root / "pods" / pod_name / name
            read_only = False
        elif "secret" in volume or "configMap" in volume:
            kind, key = ("Secret", "secret") if "secret" in volume else ("ConfigMap", "configMap")
            source = volume[key]
            ref = source.get("secretName") or source.get("name")
            data = self._secret_data(ref) if kind == "Secret" else self._config_data(ref)
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            path = self.root / "pods" / pod_name / name
            path.mkdir(parents=True, exist_ok=True)
            for item in items:
                target = path / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]])
                target.chmod(0o440)
            read_only = True
        else:
            raise NotImplementedError(f"volume {name}: {sorted(volume)}")
        if not path.exists():
            path.mkdir(parents=True)
        shutil.chown(path, *owner)
        for child in path.rglob("*"):
            shutil.chown(child, *owner)
        return path, read_only

    def docker_args(
        self, pod_name: str, pod: dict[str, Any], container: dict[str, Any]
    ) -> list[str]:
        security = pod.get("securityContext", {})
        uid, gid = security.get("runAsUser", 10001), security.get("runAsGroup", 10001)
        owner = (uid, security.get("fsGroup", gid))
        assert self.network is not None, "open_network() first"
        args = [
            "--network",
            self.network.docker_mode,
            "--label",
            f"credit-e2e={self.run_id}",
            "--user",
            f"{uid}:{gid}",
        ]
        if "fsGroup" in security:
            args += ["--group-add", str(security["fsGroup"])]
        csc = container.get("securityContext", {})
        if csc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        for cap in csc.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", cap]
        if csc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if csc.get("privileged"):
            raise PodFailed(f"{pod_name}: privileged containers are not run")
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", str(_quantity_bytes(str(limits["memory"])))]
        if "cpu" in limits:  # a node smaller than the limit gives what it has
            args += ["--cpus", str(min(_cpus(str(limits["cpu"])), os.cpu_count() or 1))]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            source, read_only = self._volume_source(pod_name, volumes[mount["name"]], owner)
            if "subPath" in mount:
                source = source / mount["subPath"]
                source.mkdir(parents=True, exist_ok=True)
                shutil.chown(source, *owner)
            mode = "ro" if read_only or mount.get("readOnly") else "rw"
            args += ["-v", f"{source}:{mount['mountPath']}:{mode}"]
        for name, value in self.environment(container).items():
            args += ["-e", f"{name}={value}"]
        command = container.get("command") or []
        if command:
            args += ["--entrypoint", command[0]]
        args.append(container["image"])
        return args + list(command[1:]) + [str(a) for a in container.get("args") or []]

    # --- running ---------------------------------------------------------------------------

    def _start(self, pod_name: str, pod: dict[str, Any], spec: dict[str, Any]) -> Container:
        docker_name = f"credit-e2e-{self.run_id}-{pod_name}-{spec['name']}"
        args = self.docker_args(pod_name, pod, spec)
        subprocess.run(
            ["docker", "run", "-d", "--name", docker_name, *args],
            check=True,
            capture_output=True,
            text=True,
        )
        container = Container(spec["name"], docker_name, spec, time.monotonic())
        self.containers.append(container)
        return container

    def logs(self, container: Container, lines: int = 60) -> str:
        out = subprocess.run(
            ["docker", "logs", "--tail", str(lines), container.docker_name],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout + out.stderr

    def _exit_code(self, container: Container) -> int | None:
        out = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.ExitCode}}",
                container.docker_name,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        running, code = out.stdout.split()
        return None if running == "true" else int(code)

    def run_job(self, name: str, timeout: float = 900) -> dict[str, float]:
        """A Job's init containers one after the other, then its container; each must exit 0.
        Returns each step's duration in seconds."""
        pod = self.get("Job", name)["spec"]["template"]["spec"]
        durations: dict[str, float] = {}
        for spec in [*pod.get("initContainers", []), *pod["containers"]]:
            container = self._start(f"{name}-job", pod, spec)
            deadline = time.monotonic() + timeout
            while (code := self._exit_code(container)) is None:
                if time.monotonic() > deadline:
                    raise PodFailed(f"job {name}/{spec['name']}: still running after {timeout} s")
                time.sleep(1)
            durations[spec["name"]] = round(time.monotonic() - container.started, 1)
            if code != 0:
                raise PodFailed(f"job {name}/{spec['name']} exited {code}:\n{self.logs(container)}")
        return durations

    def start_deployment(self, name: str) -> Container:
        pod = self.get("Deployment", name)["spec"]["template"]["spec"]
        if len(pod["containers"]) != 1:
            raise NotImplementedError(f"{name}: one container per pod is supported")
        return self._start(name, pod, pod["containers"][0])

    def probe(self, container: Container, probe: dict[str, Any]) -> bool:
        """One probe, from the pod network as the kubelet would send it."""
        assert self.network is not None
        timeout = float(probe.get("timeoutSeconds", 1))
        if "grpc" in probe:  # grpc.health.v1 Check, in a process inside the pod network
            port = container.port(probe["grpc"]["port"])
            check = self.network.command(sys.executable, str(GRPC_HEALTH), str(port))
            return (
                subprocess.run(
                    check, capture_output=True, check=False, timeout=timeout + 10
                ).returncode
                == 0
            )
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://{HOST}:{container.port(get['port'])}{get.get('path', '/')}"
            return self.network.run(_http_ok, url, timeout)
        if "tcpSocket" in probe:
            return not self.network.run(port_is_free, container.port(probe["tcpSocket"]["port"]))
        raise NotImplementedError(f"probe {sorted(probe)}")

    def wait_ready(self, container: Container, limit: float = 600) -> float:
        """Until the readiness probe succeeds, failing where the kubelet would give up on
        the container: its startup probe failing for the rendered budget, or afterwards its
        liveness probe (an unready pod is only kept out of its Service). Probed more often
        than rendered, so that the figure is to the second. Returns the seconds from start
        to ready."""
        spec = container.spec
        startup, liveness = spec.get("startupProbe"), spec.get("livenessProbe")
        deadline = time.monotonic() + limit
        if startup:
            startup_deadline = time.monotonic() + _budget(startup)
            while not self.probe(container, startup):
                self._check_alive(container, startup_deadline, "startupProbe")
                time.sleep(0.25)
        readiness = spec.get("readinessProbe")
        failing_since: float | None = None
        while readiness and not self.probe(container, readiness):
            self._check_alive(container, deadline, f"not ready in {limit:.0f} s")
            if liveness and not self.probe(container, liveness):
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > _budget(liveness):
                    raise PodFailed(
                        f"{container.name}: livenessProbe failed:\n{self.logs(container)}"
                    )
            else:
                failing_since = None
            time.sleep(0.25)
        return round(time.monotonic() - container.started, 1)

    def _check_alive(self, container: Container, deadline: float, what: str) -> None:
        if self._exit_code(container) is not None:
            raise PodFailed(f"{container.name} exited:\n{self.logs(container)}")
        if time.monotonic() > deadline:
            raise PodFailed(f"{container.name}: {what}:\n{self.logs(container)}")

    def stop(self) -> None:
        if self.network is not None:
            self.network.close()
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=credit-e2e={self.run_id}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)

    # --- monitoring ------------------------------------------------------------------------

    def scrape_targets(self, deployments: Iterable[str]) -> list[dict[str, Any]]:
        """Prometheus file_sd targets carrying the labels Kubernetes pod discovery gives a
        running pod (annotations, labels, phase, namespace, name): the repository's own
        relabelling rules then decide what is scraped and how, as in the cluster."""
        targets = []
        for name in deployments:
            template = self.get("Deployment", name)["spec"]["template"]
            first_port = template["spec"]["containers"][0]["ports"][0]["containerPort"]
            labels = {
                "__meta_kubernetes_namespace": self.namespace,
                "__meta_kubernetes_pod_name": f"{name}-0",
                "__meta_kubernetes_pod_phase": "Running",
            }
            for key, value in template["metadata"].get("annotations", {}).items():
                labels[f"__meta_kubernetes_pod_annotation_{_label_name(key)}"] = str(value)
            for key, value in template["metadata"].get("labels", {}).items():
                labels[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = str(value)
            targets.append({"targets": [f"{HOST}:{first_port}"], "labels": labels})
        return targets


def _label_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key)


def _budget(probe: dict[str, Any]) -> float:
    """Seconds a probe may fail before the kubelet acts on it."""
    if not probe:
        return 0.0
    period = float(probe.get("periodSeconds", 10))
    return float(probe.get("initialDelaySeconds", 0)) + period * int(
        probe.get("failureThreshold", 3)
    )


def _http_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return 200 <= reply.status < 400
    except (OSError, urllib.error.URLError):
        return False


def helm_template(helm: str, chart: Path, values: list[Path], sets: dict[str, str]) -> list[dict]:
    import yaml

    args = [helm, "template", "credit", str(chart), "--namespace", "credit-scoring"]
    for path in values:
        args += ["-f", str(path)]
    for key, value in sets.items():
        args += ["--set-string", f"{key}={value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    """A Secret as a secret manager would create it (production values name an existing
    one)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": dict(data),
    }
