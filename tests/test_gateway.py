"""The REST gateway against the real stack: real gRPC servers, model and feature store.

Backends are stopped for real (servers started here, never the shared stack's) to check
the 503/504 mappings; the decision log has its own module (test_gateway_decisions.py).
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.stack import start_servers
from tests.test_gateway_support import APPLICATION, running, settings_for, write_keys

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("keys") / "api-keys.json"
    return path, write_keys(path)


@pytest.fixture(scope="module")
def client(
    stack: Any, keys: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("db") / "decisions.db"
    settings = settings_for(
        keys[0], f"sqlite:///{db}", stack.scoring_address, stack.explainer_address
    )
    with running(settings) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def headers(keys: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return {"X-API-Key": keys[1]["all"]}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


def test_open_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"scoring": "SERVING", "explainer": "SERVING"}
    docs = client.get("/docs")
    assert docs.status_code == 200
    # No asset from a CDN: every script and stylesheet is the gateway's own.
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    assert "/v1/scores" in schema["paths"] and "Problem" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_score_client(client: TestClient, headers: dict[str, str], stack: Any) -> None:
    client_id = stack.train_ids[0]
    body = client.post("/v1/scores", json={"client_id": client_id}, headers=headers).json()
    assert body["client_id"] == client_id and body["simulation"] is False
    assert 0 <= body["probability"] <= 1
    assert body["decision"] == (
        "refused" if body["probability"] >= body["threshold"] else "granted"
    )
    assert math.isclose(body["distance_to_threshold"], body["probability"] - body["threshold"])
    assert body["model_version"] == stack.model.model_version
    assert len(body["decision_id"]) == 36


def test_score_application_and_simulation(client: TestClient, headers: dict[str, str]) -> None:
    real = client.post("/v1/scores", json={"application": APPLICATION}, headers=headers)
    assert real.status_code == 200, real.text
    assert real.json()["client_id"] is None
    what_if = client.post(
        "/v1/scores", headers=headers, json={"application": APPLICATION, "simulation": True}
    )
    assert what_if.json()["simulation"] is True
    assert what_if.json()["probability"] == real.json()["probability"]


def test_score_batch(client: TestClient, headers: dict[str, str], stack: Any) -> None:
    ids = [*stack.train_ids[:3], 999_999_999]
    response = client.post("/v1/scores/batch", json={"client_ids": ids}, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["client_id"] for item in items] == ids
    assert all(item["score"]["decision_id"] for item in items[:3])
    assert items[3]["score"] is None and "999999999" in items[3]["error"]
    too_many = client.post(
        "/v1/scores/batch", headers=headers, json={"client_ids": list(range(1, 102))}
    )
    assert assert_problem(too_many, 422)["field"] == "client_ids"


def test_client_profile(client: TestClient, headers: dict[str, str], stack: Any) -> None:
    client_id = stack.train_ids[1]
    en = client.get(f"/v1/clients/{client_id}", headers=headers).json()
    fr = client.get(f"/v1/clients/{client_id}?lang=fr", headers=headers).json()
    assert en["client_id"] == client_id and en["model_version"] == stack.model.model_version
    groups = {group["id"]: group for group in en["groups"]}
    assert {"identity", "income_credit", "external_scores"} <= set(groups)
    income = {f["name"]: f for f in groups["income_credit"]["fields"]}
    assert income["AMT_INCOME_TOTAL"]["value"] == pytest.approx(
        stack.features.set_index("SK_ID_CURR").loc[client_id, "AMT_INCOME_TOTAL"]
    )
    assert income["AMT_INCOME_TOTAL"]["display_value"]
    assert fr["groups"][0]["label"] != en["groups"][0]["label"]
    fields = sum(len(g["fields"]) for g in en["groups"])
    assert fields == len(stack.model.feature_names)


def test_explanations(client: TestClient, headers: dict[str, str], stack: Any) -> None:
    client_id = stack.train_ids[2]
    response = client.get(f"/v1/clients/{client_id}/explanation?lang=fr&top_k=5", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["contributions"]) == 5 and body["model_version"] == stack.model.model_version
    assert body["raising"] or body["lowering"]
    reasons = [*body["raising"], *body["lowering"]]
    assert all(r["factor"] for r in reasons) and len(body["raising"]) <= 4
    score = client.post("/v1/scores", json={"client_id": client_id}, headers=headers).json()
    assert body["probability"] == pytest.approx(score["probability"], abs=1e-9)
    new = client.post(
        "/v1/explanations", headers=headers, json={"application": APPLICATION, "top_k": 3}
    )
    assert new.status_code == 200, new.text
    assert len(new.json()["contributions"]) == 3
    unknown_version = client.get(
        f"/v1/clients/{client_id}/explanation?model_version=999", headers=headers
    )
    assert_problem(unknown_version, 404)


def test_model_population_neighbours(
    client: TestClient, headers: dict[str, str], stack: Any
) -> None:
    card = client.get("/v1/model", headers=headers).json()
    assert card["model_version"] == stack.model.model_version
    assert 0 < len(card["global_importance"]) <= 20 and card["metrics"]
    population = client.get("/v1/population/features/EXT_SOURCE_2?lang=fr", headers=headers)
    assert population.status_code == 200, population.text
    body = population.json()
    assert len(body["bin_edges"]) == len(body["repaid"]) + 1 and body["n"] > 0
    assert_problem(client.get("/v1/population/features/NOPE", headers=headers), 404)
    neighbours = client.get(
        f"/v1/clients/{stack.train_ids[0]}/neighbours",
        params={"features": ["AMT_CREDIT", "EXT_SOURCE_2"]},
        headers=headers,
    )
    assert neighbours.status_code == 200, neighbours.text
    group = neighbours.json()
    # An aggregate over a fixed group, anonymous outcome-free points (issue 17).
    assert group["k"] == 30 == len(group["neighbours"])
    assert group["default_rate"] == pytest.approx(group["defaulted_count"] / 30)
    for neighbour in group["neighbours"]:
        assert set(neighbour) == {"distance", "values"}
        assert set(neighbour["values"]) <= {"AMT_CREDIT", "EXT_SOURCE_2"}
    other_ids = {str(i) for i in stack.train_ids[1:500]}
    assert not other_ids & set(re.findall(r"\d{6,}", neighbours.text))
    # Two group sizes would tell the outcome of the clients between them.
    for k in (5, 29, 31):
        assert_problem(
            client.get(f"/v1/clients/{stack.train_ids[0]}/neighbours?k={k}", headers=headers), 422
        )
    assert_problem(
        client.get(f"/v1/clients/{stack.train_ids[0]}/neighbours?features=TARGET", headers=headers),
        404,
    )


def test_input_errors(client: TestClient, headers: dict[str, str]) -> None:
    unknown = client.post("/v1/scores", json={"client_id": 999_999_999}, headers=headers)
    assert "999999999" in assert_problem(unknown, 404)["detail"]
    assert_problem(client.get("/v1/clients/999999999", headers=headers), 404)
    # A cross-field rule and a category: checked by the gateway's schema (the OpenAPI lists
    # the categories), as by the backends; the field is named.
    over = {**APPLICATION, "amt_annuity": APPLICATION["amt_credit"] + 1}
    body = assert_problem(
        client.post("/v1/scores", json={"application": over}, headers=headers), 422
    )
    assert body["field"] == "application.amt_annuity"
    odd = {**APPLICATION, "name_income_type": "Astronaut" * 100}
    body = assert_problem(
        client.post("/v1/scores", json={"application": odd}, headers=headers), 422
    )
    assert body["field"] == "application.name_income_type"
    assert "Astronaut" * 3 not in body["detail"]  # a short prefix at most
    # Checked by the gateway's schema.
    young = {**APPLICATION, "days_birth": -100}
    body = assert_problem(
        client.post("/v1/scores", json={"application": young}, headers=headers), 422
    )
    assert body["field"] == "application.days_birth"
    missing = {k: v for k, v in APPLICATION.items() if k != "amt_credit"}
    body = assert_problem(
        client.post("/v1/scores", json={"application": missing}, headers=headers), 422
    )
    assert body["field"] == "application.amt_credit"
    extra = client.post("/v1/scores", json={"client_id": 1, "colour": "red"}, headers=headers)
    assert assert_problem(extra, 422)["field"] == "colour"
    both = client.post(
        "/v1/scores", json={"client_id": 1, "application": APPLICATION}, headers=headers
    )
    assert_problem(both, 422)
    assert_problem(client.get("/v1/decisions/not-a-uuid", headers=headers), 422)
    assert_problem(client.get("/v1/nowhere", headers=headers), 404)
    assert_problem(client.get("/v1/clients/0", headers=headers), 422)
    assert_problem(client.post("/v1/scores", content=b"{", headers=headers), 422)


def test_auth(client: TestClient, keys: tuple[Path, dict[str, str]], stack: Any) -> None:
    plain = keys[1]
    url = f"/v1/clients/{stack.train_ids[0]}"
    assert_problem(client.get(url), 401)
    assert_problem(client.get(url, headers={"X-API-Key": "not-a-key"}), 401)
    assert_problem(client.get(url, headers={"X-API-Key": plain["score"]}), 403)
    assert client.get(url, headers={"X-API-Key": plain["reader"]}).status_code == 200
    assert_problem(
        client.get(
            "/v1/decisions/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12,
            headers={"X-API-Key": plain["reader"]},
        ),
        403,
    )
    slow = {"X-API-Key": plain["slow"]}
    statuses = [client.get(url, headers=slow).status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]
    limited = client.get(url, headers=slow)
    assert_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1


def test_metrics(client: TestClient, headers: dict[str, str], stack: Any) -> None:
    def scored() -> float:
        line = next(
            line
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("credit_score_probability_count")
        )
        return float(line.split()[-1])

    before = scored()
    client.post("/v1/scores", json={"client_id": stack.train_ids[0]}, headers=headers)
    client.post(
        "/v1/scores", json={"client_id": stack.train_ids[0], "simulation": True}, headers=headers
    )
    assert scored() == before + 1  # the simulation is not part of the score distribution
    client.get(f"/v1/clients/{stack.train_ids[0]}", headers=headers)
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/v1/scores",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.002",method="GET",route=' in text
    assert "credit_decisions_total{decision=" in text
    assert 'gateway_backend_call_seconds_count{code="OK",method="Score",service="scoring"}' in text
    assert 'route="/v1/clients/{client_id}"' in text


def test_hostile_inputs_never_5xx(client: TestClient, headers: dict[str, str]) -> None:
    huge = 2**70
    cases: list[tuple[str, str, Any]] = [
        ("post", "/v1/scores", {"client_id": huge}),
        ("post", "/v1/scores", {"client_id": -1}),
        ("post", "/v1/scores", {"client_id": "1"}),
        ("post", "/v1/scores", {}),
        ("post", "/v1/scores", [1, 2]),
        ("post", "/v1/scores", {"application": {**APPLICATION, "amt_credit": float("nan")}}),
        ("post", "/v1/scores", {"application": {**APPLICATION, "code_gender": "\ud800"}}),
        (
            "post",
            "/v1/scores",
            {"application": {**APPLICATION, "numeric_fields": {"NOT_A_FIELD": 1}}},
        ),
        (
            "post",
            "/v1/scores",
            {"application": {**APPLICATION, "category_fields": {"FLAG_MOBIL": "x"}}},
        ),
        ("post", "/v1/scores/batch", {"client_ids": []}),
        ("post", "/v1/scores/batch", {"client_ids": [huge]}),
        ("post", "/v1/explanations", {"application": APPLICATION, "model_version": "../x"}),
        ("post", "/v1/explanations", {"application": APPLICATION, "lang": "de"}),
        ("get", f"/v1/clients/{huge}", None),
        ("get", "/v1/clients/1/explanation?top_k=0", None),
        ("get", "/v1/clients/1/neighbours?k=1000", None),
        ("get", "/v1/population/features/%00", None),
        ("get", "/v1/decisions?limit=100000", None),
    ]
    for method, url, body in cases:
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["content"] = __import__("json").dumps(body, allow_nan=True)
        response = getattr(client, method)(url, **kwargs)
        assert response.status_code < 500, (url, body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM), (url, response.text)


@pytest.fixture
def own_servers(stack: Any) -> Iterator[Any]:
    """Scoring and explainer servers of our own over the shared model and store: stopping
    them cannot disturb the other tests."""
    from tests.stack import start_servers

    mine = copy.copy(stack)
    start_servers(mine)
    yield mine
    mine.stop()


def test_backends_down(own_servers: Any, keys: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    settings = settings_for(
        keys[0],
        f"sqlite:///{tmp_path / 'd.db'}",
        own_servers.scoring_address,
        own_servers.explainer_address,
    )
    headers = {"X-API-Key": keys[1]["all"]}
    client_id = own_servers.train_ids[0]
    explanation = f"/v1/clients/{client_id}/explanation"
    with running(settings) as client:
        assert client.get(explanation, headers=headers).status_code == 200
        own_servers.servers[1].stop(grace=None)  # the explainer goes down
        body = assert_problem(client.get(explanation, headers=headers), 503)
        assert "explainer" in body["detail"]
        assert_problem(
            client.post("/v1/explanations", json={"application": APPLICATION}, headers=headers), 503
        )
        score = client.post("/v1/scores", json={"client_id": client_id}, headers=headers)
        assert score.status_code == 200, score.text
        assert client.get("/v1/model", headers=headers).json()["global_importance"] is None
        ready = assert_problem(client.get("/readyz"), 503)
        assert ready["checks"]["scoring"] == "SERVING" and "explainer" in ready["detail"]

        own_servers.servers[0].stop(grace=None)  # and now scoring too
        down = client.post("/v1/scores", json={"client_id": client_id}, headers=headers)
        assert "scoring" in assert_problem(down, 503)["detail"]
        assert down.headers["Retry-After"] == "1"
        ready = assert_problem(client.get("/readyz"), 503)
        assert "scoring" in ready["detail"] and "explainer" in ready["detail"]
        assert client.get("/healthz").status_code == 200
        text = client.get("/metrics").text
        assert 'code="UNAVAILABLE",method="Score",service="scoring"' in text

        # A restarted backend is used again promptly (no stale channel, no long backoff).
        back = copy.copy(own_servers)
        scoring_port = int(own_servers.scoring_address.rpartition(":")[2])
        start_servers(back, scoring_port=scoring_port)
        restarted = time.monotonic()
        try:
            while (
                client.post(
                    "/v1/scores", json={"client_id": client_id}, headers=headers
                ).status_code
                != 200
            ):
                assert time.monotonic() - restarted < 5, "gateway still 503 after restart"
                time.sleep(0.1)
        finally:
            back.stop()


def test_deadline_exceeded_is_504(keys: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """A scoring "server" that accepts connections and never answers: the deadline fires."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        settings = settings_for(
            keys[0],
            f"sqlite:///{tmp_path / 'd.db'}",
            address,
            address,
            scoring_deadline_seconds=0.3,
        )
        with running(settings) as client:
            response = client.post(
                "/v1/scores", json={"client_id": 100002}, headers={"X-API-Key": keys[1]["all"]}
            )
            assert "in time" in assert_problem(response, 504)["detail"]


def test_create_dev_key(tmp_path: Path) -> None:
    import json
    import stat

    from services.gateway.keys import SCOPES, create_dev_key, hash_key, load_keys

    keys_file, plain_file = tmp_path / ".dev" / "api-keys.json", tmp_path / ".dev" / "api-key"
    plain = create_dev_key(keys_file, plain_file)
    assert plain_file.read_text().strip() == plain
    assert stat.S_IMODE(plain_file.stat().st_mode) == 0o600
    assert plain not in keys_file.read_text()  # only the hash is stored
    [entry] = json.loads(keys_file.read_text())
    assert entry["hash"] == hash_key(plain) and set(entry["scopes"]) == set(SCOPES)
    again = create_dev_key(keys_file, plain_file)  # re-running replaces the dev key
    assert list(load_keys(keys_file, None)) == [hash_key(again)]


# -- every real application is scored ------------------------------------------------------
def _application_json(row: dict[str, Any]) -> dict[str, Any]:
    """A real Kaggle application row as a partner would post it: every field it has, with
    Kaggle's own codes as found (XNA, 365243), nothing cleaned."""
    from serving_core.application import raw_columns
    from serving_core.fields import TYPED_FIELDS
    from serving_core.schema import kaggle_schema

    table = kaggle_schema()["application_test"]
    typed = {column: field for field, column in TYPED_FIELDS.items()}
    body: dict[str, Any] = {"numeric_fields": {}, "category_fields": {}}
    for column in raw_columns():
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        category = table.column(column).kind == "category"
        if column in typed:
            integer = typed[column] in ("days_birth", "days_employed", "cnt_children")
            body[typed[column]] = str(value) if category else int(value) if integer else value
        elif category:
            body["category_fields"][column] = str(value)
        else:
            body["numeric_fields"][column] = float(value)
    return body


def test_every_real_category_value_is_scored_as_a_new_application(
    client: TestClient, headers: dict[str, str], stack: Any, real_sample: Path
) -> None:
    """Each categorical value present in the real sample's application tables (XNA too),
    sent in a real row that carries it: 200, and the values the served model never saw in
    training are reported as scored-as-missing, never refused."""
    import pandas as pd

    from serving_core.schema import CATEGORY_MISSING

    frames = [
        pd.read_csv(real_sample / f"{name}.csv.gz", keep_default_na=True, na_values=[])
        for name in ("application_train", "application_test")
    ]
    rows = pd.concat(frames, ignore_index=True).drop(columns="TARGET")
    categories = {
        f["name"]: set(f["categories"])
        for f in stack.model.schema["features"]
        if f["dtype"] == "category"
    }
    sent = 0
    for column in rows.select_dtypes("object").columns:
        for value in sorted(rows[column].dropna().unique()):
            row = rows[rows[column] == value].iloc[0].to_dict()
            response = client.post(
                "/v1/scores",
                headers=headers,
                json={"application": _application_json(row), "simulation": True},
            )
            assert response.status_code == 200, (column, value, response.text)
            expected = sorted(
                f"{name}={row[name]}"
                for name in categories
                if isinstance(row.get(name), str)
                and row[name] != CATEGORY_MISSING
                and row[name] not in categories[name]
            )
            assert sorted(response.json()["treated_as_missing"]) == expected, (column, value)
            sent += 1
    assert sent > 100  # ~16 categorical columns, ~150 values
