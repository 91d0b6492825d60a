"""The deployment, for real: the Helm chart rendered with its default values and with its
production values, and what each render holds run as containers from the images
`make images` built (tests/e2e/pods.py).

In order, as an install would: the chart's MLflow server, the training Job (data, features,
train: init containers then the container), the materialisation Job, then the scoring,
explainer, gateway and dashboard Deployments, each ready by its own rendered probes. Then,
through the gateway container only: a client scored, explained and read back, the decision
found where the Secret sends the gateway (PostgreSQL in production, SQLite on the gateway
pod's emptyDir by default); each image's HEALTHCHECK passes; an advisor signs in to the
dashboard container in Chromium and sees a decision; Prometheus scrapes every service with
the repository's scrape configuration.

Run by `make e2e` (after `make images`), not by `make test`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import missing_service
from tests.e2e.pods import Cluster, PodNetwork, helm_template, secret

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "credit-scoring"
HELM = REPO / ".tools" / "bin" / "helm"
IMAGES = ("scoring", "explainer", "gateway", "ui", "jobs")
TAG = os.environ.get("IMAGE_TAG", "dev")
# The pod network's own PostgreSQL (trust authentication on its loopback).
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/credit"
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/nonexistent"))
ADVISOR, ADVISOR_PASSWORD = "advisor-e2e", uuid.uuid4().hex
TIMINGS: dict[str, Any] = {}


def _require_environment() -> None:
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        missing_service("no Docker engine (make e2e starts one)", module_level=True)
    for image in IMAGES:
        ref = f"credit-scoring/{image}:{TAG}"
        if subprocess.run(
            ["docker", "image", "inspect", ref], capture_output=True, check=False
        ).returncode:
            missing_service(f"image {ref} not built (run make images)", module_level=True)
    if not HELM.is_file():
        missing_service("helm not installed (make ops-tools)", module_level=True)
    for tool in ("redis-server", "prometheus", "nsenter"):
        if shutil.which(tool) is None:
            missing_service(f"{tool} not installed (make e2e installs it)", module_level=True)
    if not (PG_BIN / "initdb").is_file():
        missing_service(
            "PostgreSQL server binaries missing (make e2e installs them)", module_level=True
        )


_require_environment()


def start_redis(network: PodNetwork, folder: Path) -> subprocess.Popen[bytes]:
    """The online store: a Redis server in the pod network (the chart's in-cluster Redis
    StatefulSet runs an image from a registry, which cannot be pulled here)."""
    return subprocess.Popen(
        network.command(
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_postgres(network: PodNetwork, folder: Path) -> subprocess.Popen[bytes]:
    """The decision log's PostgreSQL (a managed database in production), in the pod network:
    a throwaway cluster owned by the postgres user, local trust authentication."""
    folder.mkdir(parents=True)
    shutil.chown(folder, "postgres", "postgres")
    subprocess.run(
        network.command(
            str(PG_BIN / "initdb"),
            "-D",
            str(folder / "data"),
            "--auth=trust",
            "-U",
            "postgres",
            user="postgres",
        ),
        check=True,
        capture_output=True,
    )
    return subprocess.Popen(
        network.command(
            str(PG_BIN / "postgres"),
            "-D",
            str(folder / "data"),
            "-p",
            "5432",
            "-k",
            str(folder),
            "-c",
            "listen_addresses=127.0.0.1",
            user="postgres",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def create_database(name: str) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from services.gateway.keys import add_key

    path = tmp_path_factory.mktemp("keys") / "api-keys.json"
    plain = {
        "partner": add_key(path, "partner-e2e", ["score", "explain", "audit"]),
        "ui": add_key(path, "ui", ["score", "explain", "read:clients"]),
    }
    plain["file"] = path.read_text()
    return plain


# Two installs: values-production.yaml (the Secret comes from a secret manager: created here;
# decision log in PostgreSQL) and the chart's defaults (the chart renders the Secret from
# values; decision log in SQLite on the gateway pod's emptyDir).
PROFILES = {
    "production": [CHART / "values-production.yaml", Path(__file__).with_name("values-e2e.yaml")],
    "default": [Path(__file__).with_name("values-e2e.yaml")],
}


@pytest.fixture(scope="module", params=sorted(PROFILES))
def cluster(
    request: pytest.FixtureRequest, keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One render, installed in a private pod network: jobs run, services ready."""
    profile: str = request.param
    from services.ui.accounts import hash_password

    # Outside development mode the dashboard takes hashed passwords only.
    secrets = {
        "apiKeysJson": keys["file"],
        "uiApiKey": keys["ui"],
        "uiUsers": f"{ADVISOR}:{hash_password(ADVISOR_PASSWORD)}",
    }
    values = tmp_path_factory.mktemp("values") / "secrets.yaml"
    values.write_text(yaml.safe_dump({"secrets": secrets}))
    objects = helm_template(
        str(HELM),
        CHART,
        [*PROFILES[profile], values],
        {
            "image.tag": TAG,
            "redis.externalUrl": "redis://redis:6379/0",
            "mlflow.image": f"credit-scoring/jobs:{TAG}",
        },
    )
    if not any(o["kind"] == "Secret" for o in objects):
        gateway_volumes = next(
            o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "gateway"
        )["spec"]["template"]["spec"]["volumes"]
        name = next(v["secret"]["secretName"] for v in gateway_volumes if "secret" in v)
        # The chart names a Secret its secret manager creates: created here.
        objects.append(
            secret(
                name,
                {
                    "GATEWAY_DATABASE_URL": DATABASE_URL,
                    "api-keys.json": keys["file"],
                    "ui-api-key": keys["ui"],
                    "ui-users": secrets["uiUsers"],
                },
            )
        )
    assert not Cluster(objects, Path()).unknown_kinds(), "a kind this runner does not know"
    # Redis is reached by its in-cluster Service name, standing in for the StatefulSet.
    objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis"}})
    root = Path(tempfile.mkdtemp(prefix=f"credit-e2e-{profile}-"))
    root.chmod(0o755)  # the containers' user and the postgres user walk into it
    cluster = Cluster(objects, root, profile=profile)
    backing: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    timings: dict[str, Any] = TIMINGS.setdefault(profile, {})
    try:
        network = cluster.open_network(f"credit-scoring/jobs:{TAG}")
        backing.append(start_redis(network, root))
        backing.append(start_postgres(network, root / "postgres"))
        network.run(create_database, "credit")
        mlflow = cluster.start_deployment("mlflow")
        timings["ready_seconds"] = {"mlflow": cluster.wait_ready(mlflow)}
        timings["jobs_seconds"] = {
            "training": cluster.run_job("training"),
            "materialize": cluster.run_job("materialize"),
        }
        services = {
            name: cluster.start_deployment(name)
            for name in ("scoring", "explainer", "gateway", "ui")
        }
        # Probed side by side, as the kubelet does: each figure is that container's own.
        with ThreadPoolExecutor(len(services)) as pool:
            seconds = pool.map(cluster.wait_ready, services.values())
            ready = dict(zip(services, seconds, strict=True))
        timings["ready_seconds"].update(ready)
        timings["install_seconds"] = round(time.monotonic() - started, 1)
        yield cluster
    finally:
        cluster.stop()
        for process in backing:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
        report = REPO / "artifacts" / "e2e.json"
        report.parent.mkdir(exist_ok=True)
        report.write_text(json.dumps(TIMINGS, indent=2) + "\n")


def gateway(cluster: Cluster, path: str, key: str, **kwargs: Any) -> httpx.Response:
    """A partner's request to the gateway's Service, from inside the pod network."""
    assert cluster.network is not None
    method = "POST" if "json" in kwargs else "GET"
    return cluster.network.run(
        httpx.request,
        method,
        f"http://127.0.0.1:8000{path}",
        headers={"X-API-Key": key},
        timeout=30,
        **kwargs,
    )


def a_client_id(cluster: Cluster) -> int:
    """A client of the synthetic set the training Job generated (on the data volume)."""
    import pyarrow.parquet as pq

    table = pq.read_table(
        cluster.root / "volumes" / "credit-data" / "data" / "tables" / "application_train.parquet",
        columns=["SK_ID_CURR"],
    )
    return int(table.column(0)[0].as_py())


def test_a_decision_goes_through_the_gateway_container_into_the_decision_log(
    cluster: Cluster, keys: dict[str, str]
) -> None:
    from sqlalchemy import create_engine, text

    client_id = a_client_id(cluster)
    scored = gateway(cluster, "/v1/scores", keys["partner"], json={"client_id": client_id})
    assert scored.status_code == 200, scored.text
    decision = scored.json()
    assert decision["decision"] in {"granted", "refused"}
    explained = gateway(cluster, f"/v1/clients/{client_id}/explanation", keys["partner"])
    assert explained.status_code == 200, explained.text
    assert explained.json()["model_version"] == decision["model_version"]
    assert abs(explained.json()["probability"] - decision["probability"]) < 1e-9
    read_back = gateway(cluster, f"/v1/decisions/{decision['decision_id']}", keys["partner"])
    assert read_back.status_code == 200, read_back.text
    assert read_back.json()["decision"] == decision["decision"]

    # The row itself, where the Secret sent the gateway: PostgreSQL in production, by
    # default a SQLite file in the gateway pod's emptyDir (its /tmp).
    url = DATABASE_URL
    if cluster.profile == "default":
        gateway_env = cluster.environment(
            cluster.get("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
        )
        assert gateway_env["GATEWAY_DATABASE_URL"] == "sqlite:////tmp/decisions.db"
        url = f"sqlite:///{cluster.root / 'pods' / 'gateway' / 'tmp' / 'decisions.db'}"

    def stored_row() -> Any:
        engine = create_engine(url)
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT client_id, decision, key_id FROM decisions WHERE decision_id = :i"),
                {"i": decision["decision_id"]},
            ).one()
        engine.dispose()
        return row

    assert cluster.network is not None
    row = cluster.network.run(stored_row)
    assert (row.client_id, row.decision, row.key_id) == (
        client_id,
        decision["decision"],
        "partner-e2e",
    )
    # No key, no answer: the Secret's key file is what the container checks.
    assert gateway(cluster, "/v1/scores", "wrong", json={"client_id": client_id}).status_code == 401


@pytest.mark.parametrize("service", ["scoring", "explainer", "gateway", "ui"])
def test_the_image_healthcheck_passes_in_the_running_container(
    cluster: Cluster, service: str
) -> None:
    """The HEALTHCHECK each image declares (what `docker run` and compose use) succeeds in
    the ready container."""
    container = next(c for c in cluster.containers if c.name == service)
    image = container.spec["image"]
    check = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "-f", "{{json .Config.Healthcheck.Test}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert check[0] == "CMD", check
    result = subprocess.run(
        ["docker", "exec", container.docker_name, *check[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gateway_calls_scoring_by_its_headless_service_and_limits_in_redis(
    cluster: Cluster, keys: dict[str, str]
) -> None:
    """Issue 21, as rendered: the gateway container's targets are the headless Services'
    dns:/// names (resolved in the pod network like the other Service names, to the one
    replica here), a score answered through them, and the request was counted in the shared
    rate limit's Redis (gateway.rateLimit: the managed Redis of these values)."""
    import redis

    env = cluster.environment(
        cluster.get("Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    )
    assert env["GATEWAY_SCORING_ADDRESS"] == (
        "dns:///scoring-headless.credit-scoring.svc.cluster.local:50051"
    )
    assert env["GATEWAY_EXPLAINER_ADDRESS"] == (
        "dns:///explainer-headless.credit-scoring.svc.cluster.local:50052"
    )
    assert env["GATEWAY_RATE_LIMIT_REDIS_URL"] == "redis://redis:6379/0"
    assert cluster.get("Service", "scoring-headless")["spec"]["clusterIP"] == "None"
    client_id = a_client_id(cluster)
    scored = gateway(cluster, "/v1/scores", keys["partner"], json={"client_id": client_id})
    assert scored.status_code == 200, scored.text
    assert cluster.network is not None
    buckets = cluster.network.run(
        lambda: redis.Redis(host="127.0.0.1", port=6379, db=0).keys("credit:ratelimit:*")
    )
    assert buckets, "no rate-limit bucket in the shared Redis"


def test_jobs_left_their_outputs_on_the_shared_volume(cluster: Cluster) -> None:
    volume = cluster.root / "volumes" / "credit-data"
    assert (volume / "artifacts" / "features" / "features.parquet").is_file()
    metrics = json.loads((volume / "artifacts" / "metrics.json").read_text())
    assert metrics  # the training Job's evaluation
    assert (volume / "data" / "feature_store" / "registry.db").is_file()


def test_the_dashboard_container_serves_advisors_through_the_gateway(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.test_ui import BROWSER_ARGS, CHROMIUM, TIMEOUT_MS, look_up, status_text

    ui = cluster.get("Deployment", "ui")["spec"]["template"]["spec"]["containers"][0]
    env = cluster.environment(ui)
    # The dashboard's settings (UI_*) name the gateway's Service and no other address (the
    # shared ConfigMap also carries the gateway's own backend addresses, which it never reads).
    addresses = {k: v for k, v in env.items() if k.startswith("UI_") and "://" in v}
    assert addresses == {"UI_GATEWAY_URL": "http://gateway:8000"}

    from playwright.sync_api import sync_playwright

    # Chromium in the pod network, as an advisor's browser behind the Ingress would reach it.
    assert cluster.network is not None
    chromium = tmp_path / "chromium"
    chromium.write_text(
        "#!/bin/sh\nexec " + " ".join(cluster.network.command(str(CHROMIUM))) + ' "$@"\n'
    )
    chromium.chmod(0o755)
    client_id = a_client_id(cluster)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=BROWSER_ARGS)
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto("http://127.0.0.1:7860")
        page.get_by_label("username").fill(ADVISOR)
        page.get_by_label("password").fill(ADVISOR_PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.locator("#client-id").wait_for()
        look_up(page, client_id)
        status_text(page, f"Client {client_id} loaded")
        decision = page.locator("#decision").inner_text()
        page.screenshot(path=str(tmp_path / "dashboard.png"))
        browser.close()
    assert re.search(r"GRANTED|REFUSED", decision), decision
    # The look-up reached the gateway container under the dashboard's own key.
    logs = subprocess.run(
        ["docker", "logs", next(c.docker_name for c in cluster.containers if c.name == "gateway")],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [
        json.loads(line)
        for line in (logs.stdout + logs.stderr).splitlines()
        if line.startswith("{")
    ]
    from_ui = {(r.get("route"), r.get("status")) for r in lines if r.get("key_id") == "ui"}
    assert ("/v1/clients/{client_id}", 200) in from_ui, from_ui


def test_prometheus_scrapes_every_service_with_the_repository_config(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = yaml.safe_load((REPO / "monitoring" / "prometheus.yml").read_text())
    pods = next(j for j in config["scrape_configs"] if j["job_name"] == "credit-scoring-pods")
    # Kubernetes pod discovery, replaced by the same labels in a file; relabelling unchanged.
    del pods["kubernetes_sd_configs"]
    pods["file_sd_configs"] = [{"files": [str(tmp_path / "pods.json")]}]
    config["scrape_configs"] = [pods]
    config["global"]["scrape_interval"] = "2s"
    monitored = [
        d["metadata"]["name"]
        for d in cluster.of_kind("Deployment")
        if d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape")
    ]
    assert set(monitored) == {"scoring", "explainer", "gateway"}
    (tmp_path / "pods.json").write_text(json.dumps(cluster.scrape_targets(monitored)))
    shutil.copytree(REPO / "monitoring" / "rules", tmp_path / "rules")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    assert cluster.network is not None
    prometheus = subprocess.Popen(
        cluster.network.command(
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            "--web.listen-address=127.0.0.1:9090",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up_by_job() -> dict[str, str]:
        try:
            with urllib.request.urlopen(
                "http://127.0.0.1:9090/api/v1/query?query=up", timeout=2
            ) as reply:
                result = json.load(reply)["data"]["result"]
        except OSError:
            return {}
        return {r["metric"]["job"]: r["value"][1] for r in result}

    try:
        deadline = time.monotonic() + 60
        up: dict[str, str] = {}
        while time.monotonic() < deadline:
            up = cluster.network.run(up_by_job)
            if set(up) == set(monitored) and set(up.values()) == {"1"}:
                break
            time.sleep(1)
        assert up == dict.fromkeys(monitored, "1"), up
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
