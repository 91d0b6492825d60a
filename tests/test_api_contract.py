"""The OpenAPI says what the gateway does (issue 17): schemathesis over every operation with
every check (status codes, content types, response schemas and headers, valid data
accepted, invalid data rejected, auth enforced, unsupported methods, ...), at least 1,000
cases, 0 failures.

Real parts only: the gateway under uvicorn on a free port, the session's real scoring and
explainer gRPC servers (trained model, materialised feature store), a real key file and
decision log; schemathesis' own command line in a process of its own, as a partner's
tester would run it. Two rules JSON Schema cannot state are stated in the OpenAPI's
words and kept out of the *valid* cases only (tests/schemathesis_hooks.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_gateway_support import served, settings_for, write_keys

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
EXAMPLES_PER_OPERATION = 12  # with the coverage phase's own cases: ~3,000 in all
MIN_CASES = 1_000


@pytest.fixture(scope="module")
def gateway(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("contract")
    keys = write_keys(root / "keys.json")
    settings = settings_for(
        root / "keys.json",
        f"sqlite:///{root / 'decisions.db'}",
        stack.scoring_address,
        stack.explainer_address,
        decision_archive_dir=root / "archive",
    )
    with served(settings) as (url, _):
        yield {"url": url, "key": keys["all"], "root": root}


def test_schemathesis_all_checks_no_failure(gateway: dict[str, Any]) -> None:
    pytest.importorskip("schemathesis")
    root: Path = gateway["root"]
    report = root / "schemathesis.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{gateway['url']}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"X-API-Key: {gateway['key']}",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "17",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--output-truncate",
        "false",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    elapsed = time.monotonic() - started
    output = result.stdout[-20_000:] + result.stderr[-5_000:]
    assert report.is_file(), output
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(
        f"schemathesis: {cases['generated']} cases, {cases['with_failures']} with failures, "
        f"{len(summary['errors'])} errors in {elapsed:.0f} s"
    )
    assert summary["failures"] == [], output
    assert summary["errors"] == [], output
    assert cases["with_failures"] == 0 and cases["errored"] == 0, output
    assert summary["complete"] and result.returncode == 0, output
    assert cases["generated"] >= MIN_CASES, cases
    # Every operation of the schema was tested, in every phase.
    operations = summary["operations"]
    assert operations["tested"] == operations["total"] >= 14 and not operations["errored"]
    assert set(summary["phases"]) == {"examples", "coverage", "fuzzing", "stateful"}
    assert all(p["status"] == "success" for p in summary["phases"].values()), summary["phases"]


def test_explanation_inputs_must_be_finite_and_known(stack: Any, gateway: dict[str, Any]) -> None:
    """Infinities, NaN and categories outside Kaggle's dictionary: INVALID_ARGUMENT from
    the explainer's Explain (a logged decision's inputs), 422 from the REST API; errors
    repeat a short prefix of a value at most (issue 17)."""
    import grpc
    import httpx

    from credit.v1 import common_pb2, explainer_pb2, explainer_pb2_grpc
    from tests.test_gateway_support import APPLICATION

    version = stack.model.model_version
    numeric_feature = next(
        f["name"] for f in stack.model.schema["features"] if f["dtype"] != "category"
    )
    with grpc.insecure_channel(stack.explainer_address) as channel:
        explain = explainer_pb2_grpc.ExplainerServiceStub(channel).Explain
        ok = explain(
            explainer_pb2.ExplainRequest(
                inputs=common_pb2.FeatureVector(
                    numeric={numeric_feature: 1.0}, categorical={"NAME_CONTRACT_TYPE": "Cash loans"}
                ),
                model_version=version,
            ),
            timeout=20,
        )
        assert 0 < ok.probability < 1
        for numeric, categorical in (
            ({numeric_feature: float("inf")}, {}),
            ({numeric_feature: float("nan")}, {}),
            ({}, {"NAME_CONTRACT_TYPE": "Spaceship" * 1000}),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                explain(
                    explainer_pb2.ExplainRequest(
                        inputs=common_pb2.FeatureVector(numeric=numeric, categorical=categorical),
                        model_version=version,
                    ),
                    timeout=20,
                )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert len(refused.value.details() or "") < 200
    # A 1 MB value in an application's message broke gRPC's trailer (RESOURCE_EXHAUSTED).
    from credit.v1 import scoring_pb2, scoring_pb2_grpc

    with grpc.insecure_channel(stack.scoring_address) as channel:
        application = common_pb2.Application(
            contract_type="Cash loans",
            amt_income_total=202500.0,
            amt_credit=406597.5,
            amt_annuity=24700.5,
            days_birth=-9461,
            name_income_type="W" * 1_000_000,
        )
        with pytest.raises(grpc.RpcError) as refused:
            scoring_pb2_grpc.ScoringServiceStub(channel).Score(
                scoring_pb2.ScoreRequest(application=application), timeout=20
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "W" * 21 not in (refused.value.details() or "")
    headers = {"X-API-Key": gateway["key"], "Content-Type": "application/json"}
    for bad in (
        '"amt_credit": Infinity',
        '"amt_credit": NaN',
        '"name_income_type": "' + "Astronaut" * 1000 + '"',
    ):
        body = json.dumps({"application": APPLICATION})[:-2] + ", " + bad + "}}"
        answer = httpx.post(
            f"{gateway['url']}/v1/explanations", content=body, headers=headers, timeout=30
        )
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "Astronaut" * 3 not in answer.text
