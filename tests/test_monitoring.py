"""Monitoring: promtool (config, rules, unit tests), the Grafana dashboard's structure, and
every PromQL expression (rules + dashboard) run against a real Prometheus scraping the
in-process scoring/explainer servers (the ``stack`` fixture) and the gateway app.

Tools from scripts/install-ops-tools.sh (Debian's prometheus); a missing tool FAILS.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MON = REPO / "monitoring"
DASHBOARD = MON / "grafana" / "credit-scoring.json"
RULE_FILES = sorted((MON / "rules").glob("*.yml"))


def binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found (run: bash scripts/install-ops-tools.sh)")
    return found


def run(*args: str, cwd: Path = MON) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_promtool_check_config(tmp_path: Path):
    """Debian's Prometheus is built without Kubernetes service discovery: the config is
    checked with kubernetes_sd_configs swapped for file_sd_configs (relabelling unchanged)."""
    config = yaml.safe_load((MON / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["file_sd_configs"] = [{"files": [str(tmp_path / "targets.json")]}]
    (tmp_path / "targets.json").write_text("[]")
    config["rule_files"] = [str(MON / f) for f in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    run(binary("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))


def test_promtool_check_rules():
    out = run(binary("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert "SUCCESS" in out


def test_promtool_unit_tests():
    tests = sorted((MON / "tests").glob("*.yml"))
    assert tests
    run(binary("promtool"), "test", "rules", *(str(t.relative_to(MON)) for t in tests))


def alert_rules() -> list[dict]:
    return [
        r
        for f in RULE_FILES
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    ]


def test_every_alert_has_severity_summary_and_runbook():
    alerts = alert_rules()
    names = {a["alert"] for a in alerts}
    assert {
        "CreditGrpcHighErrorRatio",
        "CreditGatewayHighErrorRatio",
        "CreditScoringLatencyBudgetBurnFast",
        "CreditScoringLatencyBudgetBurnSlow",
        "CreditFeatureStoreErrors",
        "CreditModelReloadFailures",
        "CreditModelStale",
        "CreditDataDriftDetected",
    } <= names
    tested = "".join(t.read_text() for t in (MON / "tests").glob("*.yml"))
    for alert in alerts:
        assert alert["labels"]["severity"] in {"page", "ticket"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert alert["annotations"]["runbook"].startswith("Runbook: "), alert["alert"]
    untested = {a["alert"] for a in alerts} - set(re.findall(r"alertname: (\w+)", tested))
    assert untested <= {"CreditNoModelLoaded"}, untested


def test_dashboard_structure():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "approval",
        "score distribution",
        "feature-store",
        "model version",
        "drift",
        "requests",
        "error",
        "latency",
    ):
        assert topic in titles, topic
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}" and target["expr"].strip()


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    return [
        r["expr"]
        for f in RULE_FILES
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
    ]


# --- against a real Prometheus -----------------------------------------------------------


def query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def traffic(stack):
    """Real RPCs on the stack's servers and HTTP requests on the gateway app (``generate``,
    run before and after Prometheus' first scrape so that rates are non-zero); all of the
    process's metrics live in the default registry. Plus a registry of drift metrics."""
    from credit.v1 import explainer_pb2, explainer_pb2_grpc, scoring_pb2, scoring_pb2_grpc
    from training.drift import prometheus_metrics

    ids = stack.train_ids[:20]
    state = {"gateway": False}

    def generate() -> None:
        with grpc.insecure_channel(stack.scoring_address) as channel:
            scoring = scoring_pb2_grpc.ScoringServiceStub(channel)
            for client_id in ids:
                reply = scoring.Score(scoring_pb2.ScoreRequest(client_id=client_id), timeout=10)
            with pytest.raises(grpc.RpcError):
                scoring.Score(scoring_pb2.ScoreRequest(client_id=1), timeout=10)
        with grpc.insecure_channel(stack.explainer_address) as channel:
            explainer = explainer_pb2_grpc.ExplainerServiceStub(channel)
            for client_id in ids[:2]:
                explainer.Explain(
                    explainer_pb2.ExplainRequest(
                        client_id=client_id, model_version=reply.model_version
                    ),
                    timeout=60,
                )
        try:
            from fastapi.testclient import TestClient

            from services.gateway.app import create_app
            from services.gateway.settings import GatewaySettings
        except ImportError:  # gateway not written yet: gRPC metrics only
            return
        settings = GatewaySettings(
            scoring_address=stack.scoring_address,
            explainer_address=stack.explainer_address,
            database_url=f"sqlite:///{stack.root / 'decisions.db'}",
            api_keys_file=None,
        )
        with TestClient(create_app(settings)) as client:
            for path in ("/healthz", "/readyz", "/v1/clients/1", "/nope"):
                client.get(path)
        state["gateway"] = True

    generate()
    drift = prometheus_metrics(
        {
            "drift_share": 0.1,
            "drift_detected": False,
            "n_current": 100,
            "timestamp": time.time(),
            "features": {
                "EXT_SOURCE_2": {"score": 0.02, "method": "K-S p_value", "drifted": False}
            },
            "score_quantiles": {"current": {"0.5": 0.1}, "reference": {"0.5": 0.11}},
        }
    )
    from training.performance import FIGURES
    from training.performance import prometheus_metrics as performance_metrics

    # what `credit performance report` pushes
    cohort: dict = {name: 0.5 for name in FIGURES} | {"auc_ci95": [0.45, 0.55]}
    performance = performance_metrics(
        {
            "timestamp": time.time(),
            "model_versions": {
                "1": {
                    "training_auc": 0.81,
                    "reference_auc": 0.79,
                    "overall": cohort,
                    "cohorts": {"2026-11": cohort},
                }
            },
        }
    )
    return {
        "generate": generate,
        "state": state,
        "drift_registry": drift,
        "performance_registry": performance,
    }


def test_every_expression_runs_on_real_prometheus(traffic, tmp_path: Path):
    from prometheus_client import start_http_server

    from tests.stack import free_port

    metrics_port = free_port()
    start_http_server(metrics_port, addr="127.0.0.1")
    drift_port = free_port()
    start_http_server(drift_port, addr="127.0.0.1", registry=traffic["drift_registry"])
    performance_port = free_port()
    start_http_server(performance_port, addr="127.0.0.1", registry=traffic["performance_registry"])
    target = f"127.0.0.1:{metrics_port}"
    fast_rules = []  # the same rules, evaluated every second (group intervals dropped)
    for rule_file in RULE_FILES:
        rules = yaml.safe_load(rule_file.read_text())
        for group in rules["groups"]:
            group.pop("interval", None)
        fast_rules.append(tmp_path / rule_file.name)
        fast_rules[-1].write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(f) for f in fast_rules],
        "scrape_configs": [
            *(
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job in ("scoring", "explainer", "gateway")
            ),
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{drift_port}"], "labels": {"job": "credit-drift"}},
                    {
                        "targets": [f"127.0.0.1:{performance_port}"],
                        "labels": {"job": "credit-performance"},
                    },
                ],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_port = free_port()
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:

        def has(expr: str) -> bool:
            try:
                return bool(query(base, expr).get("data", {}).get("result"))
            except OSError:
                return False

        # Every job's first scrape must come before the second round of traffic: the jobs
        # scrape at their own offsets, and a job first scraped after the traffic never
        # sees a counter move (its rate stays empty).
        for job in ("scoring", "explainer", "gateway"):
            wait_until(
                lambda job=job: has(f'grpc_server_handled_total{{job="{job}"}}'),
                20,
                f"a first scrape of {job}",
            )
        traffic["generate"]()  # counters move between scrapes: rates are non-zero
        wait_until(
            lambda: has('sum(rate(grpc_server_handled_total{job="scoring"}[1m])) > 0'),
            20,
            "a second scrape",
        )
        if traffic["state"]["gateway"]:  # its requests come last: its scrape may lag
            wait_until(
                lambda: has('sum(rate(http_requests_total{job="gateway"}[1m])) > 0'),
                20,
                "a second scrape of the gateway",
            )
        wait_until(
            lambda: query(base, "job:grpc_server_requests:rate5m")["data"]["result"],
            10,
            "recording rules",
        )
        errors, empty = [], []
        for expr in [*rule_exprs(), *dashboard_exprs()]:
            expr = expr.replace("$__rate_interval", "1m")
            reply = query(base, expr)
            if reply.get("status") != "success":
                errors.append(f"{expr!r}: {reply.get('error')}")
            elif not reply["data"]["result"]:
                empty.append(expr)
        assert not errors, "\n".join(errors)
        # Where traffic exists, there must be data.
        must_have = [
            e
            for e in [*rule_exprs(), *dashboard_exprs()]
            if any(
                name in e
                for name in (
                    "grpc_server_handled_total",
                    "grpc_server_handling_seconds_bucket",
                    "credit_feature_store_read_seconds_bucket",
                    "credit_model_info",
                    "credit_drift_share",
                    "credit_feature_drift_score",
                    "credit_performance_",
                )
            )
        ]
        if traffic["state"]["gateway"]:
            must_have += [
                e for e in dashboard_exprs() if "http_requests_total{" in e and "5.." not in e
            ]
        missing = [
            e
            for e in must_have
            if e.replace("$__rate_interval", "1m") in empty
            and not any(s in e for s in ("errors", "grpc_code", "absent(", "> ", "< "))
        ]
        assert not missing, "no data for:\n" + "\n".join(missing)
    finally:
        process.terminate()
        process.wait(timeout=10)
