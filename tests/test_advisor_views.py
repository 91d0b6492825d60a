"""What the advisor dashboard's views need (issue 19): client search with suggestions, the
score distribution with the threshold, and the direction of each global importance.

Real parts only: the session's stack (model, SQLite feature store, gRPC servers on
loopback), servers of this module's own over stores it materialises (SQLite, and Redis
on a server started here) where a store is changed, and the gateway in process (and under
uvicorn for the dashboard's HTTP client).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from credit.v1 import explainer_pb2, explainer_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from services.common import features as feature_source
from services.explainer import reference
from services.ui import charts
from services.ui.client import GatewayClient
from serving_core.feature_store.client_index import SQLITE_TABLE, ClientIndex
from serving_core.feature_store.completeness import VIEWS, MarkerStore
from serving_core.feature_store.reader import register_model_features
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from tests.redis_servers import redis_server, require_redis
from tests.stack import Stack, start_servers
from tests.test_gateway_support import running, served, settings_for, write_keys
from training.feature_store.materialize import materialize
from training.modeling import MONOTONE_DECREASING, MONOTONE_INCREASING

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"
# Not digits as the API means them (ASCII), too long, or empty.
BAD_PREFIXES = ("", "12a", "-1", " 1", "1 ", "1" * 13, "١٢", "²", "1.0", "0x1")
LOWERS, RAISES, MIXED = (
    explainer_pb2.DIRECTION_LOWERS,
    explainer_pb2.DIRECTION_RAISES,
    explainer_pb2.DIRECTION_MIXED,
)


def restore(settings: FeatureStoreSettings, ids: list[int]) -> None:
    """The index as the materialisation wrote it: the clients, the run's expiry."""
    store = open_store(settings)
    ClientIndex(store).write(ids, expires_at=MarkerStore(store).read()[VIEWS].expires_at)


def expected(ids: list[int], prefix: str, limit: int) -> list[int]:
    """What a search must answer, computed from the features themselves."""
    return sorted(i for i in ids if str(i).startswith(prefix))[:limit]


def search(stub: Any, prefix: str, limit: int = 0) -> list[int]:
    request = scoring_pb2.SearchClientsRequest(prefix=prefix, limit=limit)
    return list(stub.SearchClients(request, timeout=10).client_ids)


def rpc_code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


@pytest.fixture(scope="module")
def ids(stack: Stack) -> list[int]:
    """Every client materialised: each row of the features (train and test applicants)."""
    return sorted(int(i) for i in stack.features["SK_ID_CURR"])


@pytest.fixture(scope="module")
def scoring(stack: Stack) -> scoring_pb2_grpc.ScoringServiceStub:
    return scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(stack.scoring_address))


@pytest.fixture(scope="module")
def explainer(stack: Stack) -> explainer_pb2_grpc.ExplainerServiceStub:
    return explainer_pb2_grpc.ExplainerServiceStub(grpc.insecure_channel(stack.explainer_address))


@pytest.fixture(scope="module")
def sample(stack: Stack) -> pd.DataFrame:
    """The version's reference sample, as training saved it."""
    return pd.read_parquet(stack.root / "artifacts-0" / "reference.parquet")


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def own(
    request: pytest.FixtureRequest, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Any]]:
    """Servers over a store of this module's own (the session's is never changed), with the
    same clients: SQLite, or Redis with a key TTL. Yields the stack and the store's Redis
    client (None on SQLite)."""
    root = tmp_path_factory.mktemp(f"own-{request.param}")
    with_redis = request.param == "redis"
    with ExitStack() as started:
        port = 0
        if with_redis:
            require_redis()
            port, _ = started.enter_context(redis_server(root / "redis"))
        settings = FeatureStoreSettings(
            online_store=request.param,
            data_dir=root / "feature_store",
            project=f"advisor_{request.param}",
            redis_connection=f"127.0.0.1:{port},db=0",
            redis_key_ttl_seconds=3600 if with_redis else None,
        )
        materialize(settings, stack.features_dir, progress=False)
        model = stack.model
        register_model_features(open_store(settings), model.model_version, model.feature_names)
        served_stack = dataclasses.replace(stack, store_settings=settings, servers=[], sources=[])
        start_servers(served_stack)
        started.callback(served_stack.stop)
        yield served_stack, (redis.Redis(port=port) if with_redis else None)


# -- SearchClients (gRPC) --------------------------------------------------------------------
def test_search_returns_exactly_the_stored_ids_starting_with_the_prefix(
    scoring: Any, ids: list[int]
) -> None:
    first, last = ids[0], ids[-1]
    cases = [
        ("1", 20),
        ("100", 5),
        ("1000", 20),
        ("10001", 20),
        (str(first), 1),
        (str(last)[:4], 20),
        (str(last), 20),
        (str(last) + "0", 20),  # longer than any id
        ("9", 20),  # no id starts with 9 (synthetic ids from 100001)
        ("0", 20),  # no positive id starts with 0
        ("0100002", 20),
    ]
    for prefix, limit in cases:
        assert search(scoring, prefix, limit) == expected(ids, prefix, limit), prefix
    assert search(scoring, str(first)) == [first]
    # limit 0 is the default, 10
    assert search(scoring, "10") == expected(ids, "10", 10) and len(expected(ids, "10", 10)) == 10


def test_search_refuses_a_bad_prefix_or_limit(scoring: Any) -> None:
    for prefix in BAD_PREFIXES:
        code = rpc_code(lambda prefix=prefix: search(scoring, prefix, 5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, prefix
    for limit in (-1, 21, 1000):
        code = rpc_code(lambda limit=limit: search(scoring, "1", limit))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, limit


def test_search_is_in_numeric_order_across_lengths_on_each_store(
    own: tuple[Stack, Any], ids: list[int]
) -> None:
    """The index of each store kind answers like the features; ids of different lengths
    come in numeric order (99 before 100), not text order."""
    served_stack, _ = own
    stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served_stack.scoring_address))
    for prefix, limit in (("1", 20), ("1000", 7), ("10002", 20), ("5", 20)):
        assert search(stub, prefix, limit) == expected(ids, prefix, limit)
    index = ClientIndex(open_store(served_stack.store_settings))
    odd = [
        7,
        70,
        71,
        79,
        700,
        7_000_000_000_000_000_000,
        8,
        123_456_789_012,
        9_223_372_036_854_775_807,
    ]
    try:
        index.write(odd)
        assert search(stub, "7", 20) == [7, 70, 71, 79, 700, 7_000_000_000_000_000_000]
        assert search(stub, "7", 3) == [7, 70, 71]
        assert search(stub, "70", 20) == [70, 700, 7_000_000_000_000_000_000]
        assert search(stub, "9223372036", 20) == [9_223_372_036_854_775_807]
        assert search(stub, "1234567890", 20) == [123_456_789_012]
        assert search(stub, "1000", 20) == []  # the index is what is searched: replaced whole
    finally:
        restore(served_stack.store_settings, ids)
    assert search(stub, "1000", 20) == expected(ids, "1000", 20)


class Recorder:
    """Stands in for a module's structlog logger: the events it was given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.events.append((event, fields))


def test_a_store_materialised_before_the_index_finds_nothing_and_says_so_once(
    own: tuple[Stack, Any], ids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    served_stack, _ = own
    stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served_stack.scoring_address))
    store = open_store(served_stack.store_settings)
    index = ClientIndex(store)
    assert index.search("1", 1) is not None
    index.clear()  # what a store materialised before the index holds: markers, no index
    try:
        assert MarkerStore(store).read()  # still a complete store: clients are served
        logs = Recorder()
        monkeypatch.setattr(feature_source, "log", logs)
        assert search(stub, "1", 20) == [] and search(stub, "10", 20) == []
        missing = [fields for event, fields in logs.events if event == "client_index_missing"]
        assert len(missing) == 1 and "credit materialize" in missing[0]["hint"]
        reply = stub.Score(scoring_pb2.ScoreRequest(client_id=ids[0]), timeout=10)
        assert 0 < reply.probability < 1
    finally:
        restore(served_stack.store_settings, ids)
    assert search(stub, "1", 3) == ids[:3]


def search_outcome(stub: Any, prefix: str) -> str:
    """The search's answer as a code: OK, or the status and its reason."""
    try:
        search(stub, prefix, 5)
    except grpc.RpcError as error:
        reasons = dict(error.trailing_metadata() or ())
        return f"{error.code().name}:{reasons.get('credit-error-reason', '')}"
    return "OK"


def eventually(probe: Any, timeout: float = 30.0) -> None:
    """Poll ``probe`` until true; fail after ``timeout`` s (a bound, not a speed test)."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.05)


def test_search_in_an_incomplete_store_is_unavailable_never_an_empty_answer(
    own: tuple[Stack, Any],
) -> None:
    """A store that lost its markers (emptied, a load cut short) says so, as a client read
    does: an empty list would tell the advisor that no such client exists."""
    served_stack, _ = own
    stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served_stack.scoring_address))
    markers = MarkerStore(open_store(served_stack.store_settings))
    kept = markers.read()
    markers.clear()
    try:
        eventually(lambda: search_outcome(stub, "1") == "UNAVAILABLE:feature-store-incomplete")
    finally:
        markers.write(list(kept.values()))
    eventually(lambda: search_outcome(stub, "1") == "OK")


def test_the_index_lives_in_the_store_and_teardown_removes_it(
    own: tuple[Stack, Any], ids: list[int]
) -> None:
    """Redis: one sorted set (score 0, ZRANGEBYLEX), under the marker's expiry, in Feast's
    key-prefix/project convention so Feast's teardown deletes it with the clients. SQLite: a
    table of its own in the online store's file. (Last of the module's tests on ``own``.)"""
    served_stack, client = own
    store = open_store(served_stack.store_settings)
    index = ClientIndex(store)
    if client is not None:
        key = index.redis_key()
        assert client.type(key) == b"zset" and client.zcard(key) == len(ids)
        assert {score for _, score in client.zrange(key, 0, 50, withscores=True)} == {0.0}
        marker_ttl, index_ttl = client.ttl(MarkerStore(store).redis_key()), client.ttl(key)
        assert 0 < index_ttl <= 3600 and abs(index_ttl - marker_ttl) <= 1
    else:
        path = served_stack.store_settings.sqlite_path
        with closing(sqlite3.connect(path)) as db:
            rows = db.execute(f"SELECT client_id FROM {SQLITE_TABLE} ORDER BY client_id")
            assert [row[0] for row in rows] == ids
    store.teardown()
    assert index.search("1", 1) is None
    if client is not None:
        assert not client.exists(key) and not client.exists(MarkerStore(store).redis_key())


# -- GetScoreDistribution (gRPC) -------------------------------------------------------------
def test_score_distribution_counts_the_reference_sample_out_of_fold(
    stack: Stack, explainer: Any, scoring: Any, sample: pd.DataFrame
) -> None:
    version = stack.model.model_version
    reply = explainer.GetScoreDistribution(
        explainer_pb2.ScoreDistributionRequest(model_version=version), timeout=30
    )
    model = scoring.GetModel(scoring_pb2.GetModelRequest(), timeout=10)
    assert reply.model_version == version and reply.threshold == model.threshold
    assert reply.n == len(sample) == sum(b.repaid + b.defaulted for b in reply.bins)
    assert reply.out_of_fold and "out-of-fold" in reply.source
    assert 20 <= len(reply.bins) <= 50
    edges = [reply.bins[0].lower, *(b.upper for b in reply.bins)]
    assert edges[0] == 0.0
    assert all(b.upper == c.lower for b, c in zip(reply.bins, reply.bins[1:], strict=False))
    assert reply.threshold in edges  # each bin is wholly granted or wholly refused
    assert reply.min_cell == 20  # no cell small enough to tell one client's outcome
    assert all(b.repaid + b.defaulted in (0, *range(20, reply.n + 1)) for b in reply.bins)
    # The same counts from the sample's own out-of-fold probabilities and outcomes.
    p = sample["oof_prediction"].to_numpy(dtype=float)
    bad = sample["TARGET"].to_numpy().astype(bool)
    assert p.max() <= edges[-1]
    for b, last in zip(reply.bins, [False] * (len(reply.bins) - 1) + [True], strict=True):
        inside = (p >= b.lower) & ((p <= b.upper) if last else (p < b.upper))
        assert (int((inside & ~bad).sum()), int((inside & bad).sum())) == (b.repaid, b.defaulted)
    # The honest probabilities are not the served model's own on its training clients.
    assert not np.allclose(p, sample["prediction"].to_numpy(dtype=float))
    for bad_version, code in (("", "INVALID_ARGUMENT"), ("987654", "NOT_FOUND")):
        request = explainer_pb2.ScoreDistributionRequest(model_version=bad_version)
        assert (
            rpc_code(lambda r=request: explainer.GetScoreDistribution(r, timeout=30)).name == code
        )


def test_a_sample_without_out_of_fold_probabilities_is_predicted_and_said_in_sample(
    stack: Stack, sample: pd.DataFrame
) -> None:
    """A version trained before the out-of-fold column: the served model predicts the sample
    (its own training clients), and the source says so."""
    older = sample.drop(columns=[reference.OOF_COLUMN])
    found = reference.score_distribution(stack.model, older)
    assert not found.out_of_fold and "in sample" in found.source
    p = stack.model.predict_proba(older)
    assert np.allclose(p, sample["prediction"].to_numpy(dtype=float))
    assert found.n == len(sample) == sum(b.repaid + b.defaulted for b in found.bins)
    assert sum(b.defaulted for b in found.bins) == int(sample["TARGET"].sum())
    refused = sum(b.repaid + b.defaulted for b in found.bins if b.lower >= found.threshold)
    assert refused == int((p >= stack.model.threshold).sum())


# -- GlobalImportance direction (gRPC) -------------------------------------------------------
def test_importance_directions_follow_the_monotone_constraints(
    stack: Stack, explainer: Any
) -> None:
    reply = explainer.GlobalImportance(
        explainer_pb2.GlobalImportanceRequest(model_version=stack.model.model_version, top_k=200),
        timeout=30,
    )
    directions = {f.feature: f.direction for f in reply.features}
    assert set(directions.values()) <= {LOWERS, RAISES, MIXED}
    assert RAISES in directions.values() and LOWERS in directions.values()
    specs = {f["name"]: f for f in stack.model.schema["features"]}
    important = {f.feature for f in reply.features[:20]}
    external = [n for n in important if n.startswith("EXT_SOURCE_") and n != "EXT_SOURCE_STD"]
    assert external, "the external scores lead the importance"
    for name, direction in directions.items():
        if specs[name]["dtype"] == "category":
            assert direction == MIXED, name
        elif MONOTONE_DECREASING.match(name):
            assert direction != RAISES, name
        elif MONOTONE_INCREASING.match(name):
            assert direction != LOWERS, name
    assert all(directions[n] == LOWERS for n in external), external


# -- REST ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("advisor-keys") / "api-keys.json"
    return path, write_keys(path)


@pytest.fixture(scope="module")
def gateway(
    stack: Stack, keys: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("advisor-db") / "decisions.db"
    settings = settings_for(
        keys[0], f"sqlite:///{db}", stack.scoring_address, stack.explainer_address
    )
    with running(settings) as client:
        yield client


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    return body


def test_rest_client_search(
    gateway: TestClient, keys: tuple[Path, dict[str, str]], ids: list[int]
) -> None:
    reader = {"X-API-Key": keys[1]["reader"]}
    answer = gateway.get("/v1/clients", params={"prefix": "10000"}, headers=reader)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"prefix": "10000", "clients": expected(ids, "10000", 10)}
    some = gateway.get("/v1/clients?prefix=1000&limit=3", headers=reader).json()
    assert some["clients"] == expected(ids, "1000", 3) and len(some["clients"]) == 3
    assert gateway.get("/v1/clients?prefix=99&limit=20", headers=reader).json()["clients"] == []
    for prefix in BAD_PREFIXES:
        body = problem(gateway.get("/v1/clients", params={"prefix": prefix}, headers=reader), 422)
        assert body["field"] == "prefix" or "prefix" in body["detail"], body
    for limit in ("0", "21", "abc", "1.5"):
        problem(gateway.get(f"/v1/clients?prefix=1&limit={limit}", headers=reader), 422)
    problem(gateway.get("/v1/clients", headers=reader), 422)  # the prefix is required
    problem(gateway.get("/v1/clients?prefix=1"), 401)
    problem(gateway.get("/v1/clients?prefix=1", headers={"X-API-Key": keys[1]["score"]}), 403)
    # No clash with the client's own route, either way.
    profile = gateway.get(f"/v1/clients/{ids[0]}", headers=reader)
    assert profile.status_code == 200 and profile.json()["client_id"] == ids[0]
    problem(gateway.get("/v1/clients/search?prefix=1", headers=reader), 422)


def test_rest_score_distribution_and_model_directions(
    gateway: TestClient, keys: tuple[Path, dict[str, str]], stack: Stack
) -> None:
    headers = {"X-API-Key": keys[1]["all"]}
    card = gateway.get("/v1/model", headers=headers).json()
    answer = gateway.get("/v1/population/scores", headers={"X-API-Key": keys[1]["reader"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {"model_version", "threshold", "n", "source", "bins"} <= set(body)
    assert body["model_version"] == card["model_version"] == stack.model.model_version
    assert body["threshold"] == card["threshold"]
    assert body["n"] == sum(b["repaid"] + b["defaulted"] + b["hidden"] for b in body["bins"])
    assert set(body["bins"][0]) == {"lower", "upper", "repaid", "defaulted", "hidden"}
    pinned = gateway.get(
        f"/v1/population/scores?model_version={stack.model.model_version}", headers=headers
    )
    assert pinned.json() == body
    for version in ("07", "987654", ".."):
        problem(gateway.get(f"/v1/population/scores?model_version={version}", headers=headers), 404)
    problem(gateway.get("/v1/population/scores", headers={"X-API-Key": keys[1]["score"]}), 403)
    importance = card["global_importance"]
    assert importance and all(f["direction"] in {"raises", "lowers", "mixed"} for f in importance)
    for entry in importance:
        if entry["feature"].startswith("EXT_SOURCE_") and entry["feature"] != "EXT_SOURCE_STD":
            assert entry["direction"] == "lowers", entry


def test_the_dashboards_client_reads_both(
    stack: Stack, keys: tuple[Path, dict[str, str]], ids: list[int], tmp_path: Path
) -> None:
    settings = settings_for(
        keys[0],
        f"sqlite:///{tmp_path / 'decisions.db'}",
        stack.scoring_address,
        stack.explainer_address,
    )
    with served(settings) as (url, _):
        client = GatewayClient(url, keys[1]["all"])
        try:
            assert client.search_clients("1000", limit=4) == {
                "prefix": "1000",
                "clients": expected(ids, "1000", 4),
            }
            assert client.search_clients("100")["clients"] == expected(ids, "100", 10)
            distribution = client.score_distribution()
            assert distribution["model_version"] == stack.model.model_version
            assert distribution["n"] == sum(map(charts.clients, distribution["bins"]))
        finally:
            client.close()
