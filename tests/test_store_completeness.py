"""An emptied or half-written online store is unavailability, never "unknown client".

Real stores (SQLite files, and the Redis on 127.0.0.1:6379, database 11, which these tests
own and flush), real gRPC servers on loopback, the real gateway in process, and a real
materialisation process killed with SIGKILL half-way. The session ``stack`` lends its
features, model and registry; every store here is this module's own.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import polars as pl
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from credit.v1 import explainer_pb2, explainer_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from services.common.errors import REASON_KEY
from services.explainer.server import SERVICE as EXPLAINER_SERVICE
from services.scoring.server import SERVICE as SCORING_SERVICE
from serving_core.feature_store.client_index import ClientIndex
from serving_core.feature_store.completeness import VIEWS, MarkerStore
from serving_core.feature_store.definitions import APPLICATION_VIEW, offline_frame
from serving_core.feature_store.reader import (
    IncompleteClient,
    OnlineFeatureReader,
    register_model_features,
    service_name,
)
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from tests.conftest import missing_service, wait_for
from tests.redis_servers import redis_cluster as local_redis_cluster
from tests.redis_servers import require_redis
from tests.stack import Stack, start_servers
from tests.test_gateway_support import APPLICATION, running, settings_for, write_keys
from training.feature_store.bench import redis_listening
from training.feature_store.materialize import materialize, write_frame
from training.features.pipeline import FEATURES_FILE, load_feature_schema

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
REDIS_DB = 11
REDIS = f"127.0.0.1:6379,db={REDIS_DB}"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
INCOMPLETE = "https://credit-scoring.example/problems/feature-store-incomplete"
UNKNOWN_CLIENT = 987_654_321


# -- helpers -------------------------------------------------------------------------------


def health(address: str, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def store_settings(kind: str, root: Path) -> FeatureStoreSettings:
    project = f"test_complete_{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        if not redis_listening(REDIS):
            missing_service(f"no Redis listening on {REDIS.split(',')[0]}")
        return FeatureStoreSettings(
            online_store="redis", data_dir=root / "redis", project=project, redis_connection=REDIS
        )
    return FeatureStoreSettings(data_dir=root / "sqlite", project=project)


def empty(settings: FeatureStoreSettings) -> None:
    """What an SRE fears: the store's data gone (Redis: FLUSHDB, as after a restart without
    persistence; SQLite: every table's rows deleted under the running readers)."""
    if settings.is_redis:
        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
        return
    with closing(sqlite3.connect(settings.sqlite_path)) as db, db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            db.execute(f'DELETE FROM "{table}"')


def teardown(settings: FeatureStoreSettings) -> None:
    open_store(settings).teardown()
    if settings.is_redis:  # the marker went with the clients (its key is Feast's pattern)
        left = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).keys(
            f"*{settings.project}".encode()
        )
        assert not left, "teardown left keys behind"


def serve(stack: Stack, settings: FeatureStoreSettings, root: Path) -> Stack:
    """Scoring and explainer servers of our own on ``settings``' store (same model)."""
    served = copy.copy(stack)
    served.root, served.store_settings = root, settings
    start_servers(served, check_seconds=0.5)
    return served


def reason(error: grpc.RpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get(REASON_KEY)


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys") / "api-keys.json"
    return path, write_keys(path)["all"]


@pytest.fixture(scope="module")
def second_run(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack's features with other values in both views (an application feature and a
    history feature), built later: a second run whose clients can be told from the first's."""
    out = tmp_path_factory.mktemp("second-run")
    schema = load_feature_schema(stack.features_dir)
    (out / "feature_schema.json").write_text(json.dumps(schema))
    frame = pl.read_parquet(stack.features_dir / FEATURES_FILE)
    frame.with_columns(
        pl.col(APP_FEATURE) * 2 + 1, pl.col(HISTORY_FEATURE).fill_null(0) + 1000
    ).write_parquet(out / FEATURES_FILE)
    later = (stack.features_dir / FEATURES_FILE).stat().st_mtime + 3600
    os.utime(out / FEATURES_FILE, (later, later))
    return out


APP_FEATURE, HISTORY_FEATURE = "AMT_CREDIT", "BUREAU_COUNT"


def register(settings: FeatureStoreSettings, stack: Stack) -> None:
    register_model_features(
        open_store(settings), stack.model.model_version, stack.model.feature_names
    )


# -- markers -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_materialisation_marks_the_run_and_each_feature_service(
    stack: Stack, tmp_path: Path, kind: str
) -> None:
    settings = store_settings(kind, tmp_path)
    try:
        store = open_store(settings)
        markers = MarkerStore(store)
        assert markers.read() == {}
        version = stack.model.model_version
        materialize(settings, stack.features_dir, progress=False)
        assert set(markers.read()) == {VIEWS}  # no feature service registered yet
        register(settings, stack)  # registered after the run: marked from the run's record
        found = markers.read()
        run, service = found[VIEWS], found[service_name(version)]
        ids = stack.features["SK_ID_CURR"].tolist()
        assert run.clients == len(set(ids)) == len(ids)
        assert service.run_id == run.run_id and service.model_version == version
        assert service.clients == run.clients and service.event_time == run.event_time
        assert len(run.probes) == 5 and set(run.probes) <= set(ids)
        assert min(ids) in run.probes and max(ids) in run.probes
        assert all(markers.holds(p, run.views) for p in run.probes)
        assert not markers.holds(UNKNOWN_CLIENT, run.views)
        assert markers.missing(run.probes, run.views) is None
        assert markers.missing([*run.probes, UNKNOWN_CLIENT], run.views) == UNKNOWN_CLIENT
        assert markers.missing(run.probes, [*run.views, "no_such_view"]) == run.probes[0]
        # A second run marks every registered service again, with its own run id.
        materialize(settings, stack.features_dir, progress=False)
        again = markers.read()
        assert again[VIEWS].run_id != run.run_id
        assert again[service_name(version)].run_id == again[VIEWS].run_id
    finally:
        teardown(settings)


def test_a_service_registered_before_any_run_has_no_marker(stack: Stack, tmp_path: Path) -> None:
    settings = store_settings("sqlite", tmp_path)
    store = open_store(settings)
    # The repo applied, nothing loaded (as after a load killed before its first chunk).
    from training.feature_store.materialize import apply_repo, export_offline

    export_offline(settings, stack.features_dir)
    apply_repo(store, settings, stack.features_dir)
    register(settings, stack)
    assert MarkerStore(store).read() == {}


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_half_a_client_is_refused_never_served(
    stack: Stack, second_run: Path, tmp_path: Path, kind: str
) -> None:
    """One view of a client rewritten by another run (Feast's per-view writer cut short):
    the reader refuses it, the services answer UNAVAILABLE feature-store-incomplete."""
    settings = store_settings(kind, tmp_path)
    served = None
    try:
        materialize(settings, stack.features_dir, progress=False)
        register(settings, stack)
        client_id = int(stack.features["SK_ID_CURR"][7])
        store = open_store(settings.model_copy(update={"redis_skip_dedup": True}))
        view = store.get_feature_view(APPLICATION_VIEW)
        row = pl.read_parquet(second_run / FEATURES_FILE).filter(pl.col("SK_ID_CURR") == client_id)
        stamp = datetime.fromtimestamp((second_run / FEATURES_FILE).stat().st_mtime, tz=UTC)
        write_frame(store, offline_frame(row, stamp), [view])
        reader = OnlineFeatureReader(open_store(settings))
        with pytest.raises(IncompleteClient):
            reader.get_client_features(client_id, stack.model.model_version)
        served = serve(stack, settings, tmp_path)
        stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served.scoring_address))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Score(scoring_pb2.ScoreRequest(client_id=client_id), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason(caught.value) == "feature-store-incomplete"
        other = int(stack.features["SK_ID_CURR"][8])  # the rest of the store is served
        assert stub.Score(scoring_pb2.ScoreRequest(client_id=other), timeout=10).probability
    finally:
        if served is not None:
            served.stop()
        teardown(settings)


# -- a running stack whose store is emptied, then materialised again ------------------------
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_emptied_store_is_503_then_200_again_without_restart(
    stack: Stack, keys: tuple[Path, str], tmp_path: Path, kind: str
) -> None:
    settings = store_settings(kind, tmp_path)
    materialize(settings, stack.features_dir, progress=False)
    register(settings, stack)
    served = serve(stack, settings, tmp_path)
    gateway = settings_for(
        keys[0],
        f"sqlite:///{tmp_path / 'decisions.db'}",
        served.scoring_address,
        served.explainer_address,
    )
    headers = {"X-API-Key": keys[1]}
    client_id = int(stack.train_ids[3])
    explanation = f"/v1/clients/{client_id}/explanation"
    try:
        with running(gateway) as client:
            wait_for(lambda: client.get("/readyz").status_code == 200)
            first = client.post("/v1/scores", json={"client_id": client_id}, headers=headers)
            assert first.status_code == 200, first.text
            assert client.get(explanation, headers=headers).status_code == 200
            unknown = client.post("/v1/scores", json={"client_id": UNKNOWN_CLIENT}, headers=headers)
            assert unknown.status_code == 404, unknown.text  # complete store: truly unknown

            empty(settings)
            emptied = time.monotonic()
            # At once, before any periodic check: the not-found re-reads the marker.
            for response in (
                client.post("/v1/scores", json={"client_id": client_id}, headers=headers),
                client.get(explanation, headers=headers),
                client.post("/v1/scores/batch", json={"client_ids": [client_id]}, headers=headers),
                client.get(f"/v1/clients/{client_id}", headers=headers),
            ):
                assert response.status_code == 503, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.json()["type"] == INCOMPLETE
                assert int(response.headers["Retry-After"]) > 0
            wait_for(lambda: client.get("/readyz").status_code == 503)
            not_ready = time.monotonic() - emptied
            ready = client.get("/readyz").json()
            assert ready["checks"] == {"scoring": "NOT_SERVING", "explainer": "NOT_SERVING"}
            # Unknown or not, no client is "unknown" in an incomplete store.
            unknown = client.post("/v1/scores", json={"client_id": UNKNOWN_CLIENT}, headers=headers)
            assert unknown.status_code == 503 and unknown.json()["type"] == INCOMPLETE
            # New applications need no store: still scored.
            application = {"application": APPLICATION}
            assert client.post("/v1/scores", json=application, headers=headers).status_code == 200

            materialize(settings, stack.features_dir, progress=False)
            materialised = time.monotonic()
            wait_for(lambda: client.get("/readyz").status_code == 200)
            back = time.monotonic() - materialised
            again = client.post("/v1/scores", json={"client_id": client_id}, headers=headers)
            assert again.status_code == 200, again.text
            assert again.json()["probability"] == first.json()["probability"]
            assert client.get(explanation, headers=headers).status_code == 200
        print(
            f"\n{kind}: /readyz 503 {not_ready:.2f} s after emptying, "
            f"200 {back:.2f} s after materialising"
        )
    finally:
        served.stop()
        teardown(settings)


def test_store_that_lost_clients_but_kept_its_marker_is_incomplete(
    stack: Stack, tmp_path: Path
) -> None:
    """The marker survived, the clients did not (a partial copy, evictions): the probe
    clients tell, so neither readiness nor a not-found believes the marker."""
    settings = store_settings("sqlite", tmp_path)
    materialize(settings, stack.features_dir, progress=False)
    register(settings, stack)
    served = serve(stack, settings, tmp_path)
    stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served.scoring_address))
    client_id = int(stack.train_ids[5])
    try:
        assert stub.Score(scoring_pb2.ScoreRequest(client_id=client_id), timeout=10).probability
        with closing(sqlite3.connect(settings.sqlite_path)) as db, db:
            for (table,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE ?",
                (f"{settings.project}%",),
            ).fetchall():
                db.execute(f'DELETE FROM "{table}"')
        assert MarkerStore(open_store(settings)).read()  # the marker is still there
        with pytest.raises(grpc.RpcError) as caught:
            stub.Score(scoring_pb2.ScoreRequest(client_id=client_id), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        assert reason(caught.value) == "feature-store-incomplete"
        assert "no longer matches" in caught.value.details()
        wait_for(lambda: health(served.scoring_address, SCORING_SERVICE) == NOT_SERVING)
        wait_for(lambda: health(served.explainer_address, EXPLAINER_SERVICE) == NOT_SERVING)
    finally:
        served.stop()
        teardown(settings)


# -- a materialisation killed half-way ------------------------------------------------------
# The real materialize() in a process of its own, in smaller chunks and slowed down after
# each one, so that SIGKILL lands with some clients rewritten and others not.
KILLABLE = """
import functools, sys, time
from pathlib import Path
from serving_core.feature_store.settings import FeatureStoreSettings
from training.feature_store.materialize import materialize
import training.feature_store.sqlite_snapshot as s
m = sys.modules["training.feature_store.materialize"]  # the package's name is the function

settings = FeatureStoreSettings.model_validate_json(sys.argv[1])
s.CHUNK_CLIENTS = 200
m.restore_chunks = functools.partial(m.restore_chunks, chunk=200)
original = m.write_frame

def slowly(store, frame, views, progress=None):
    def step(values):
        print("chunk", flush=True)
        time.sleep(0.5)
    return original(store, frame, views, progress=step)

m.write_frame = slowly
materialize(settings, Path(sys.argv[2]), progress=False)
print("done", flush=True)
"""


def kill_half_way(settings: FeatureStoreSettings, features_dir: Path, chunks: int = 3) -> None:
    log = settings.data_dir.parent / "killed-load.log"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, settings.model_dump_json(), str(features_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert process.stdout is not None
        seen = 0
        for line in process.stdout:
            assert line.strip() != "done", "the load finished before it could be killed"
            seen += line.strip() == "chunk"
            if seen == chunks:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, log.read_text()[-3000:]


def features_of(stub: Any, client_id: int) -> tuple[float | None, float | None] | str:
    """(application feature, history feature) as served, or the error code's name."""
    try:
        profile = stub.GetClient(scoring_pb2.GetClientRequest(client_id=client_id), timeout=10)
    except grpc.RpcError as error:
        code = error.code().name
        return f"{code}:{reason(error)}"
    numbers = profile.features.numeric
    return numbers.get(APP_FEATURE), numbers.get(HISTORY_FEATURE)


def expected_pairs(features_dir: Path) -> dict[int, tuple[float | None, float | None]]:
    frame = pl.read_parquet(features_dir / FEATURES_FILE)
    return {
        int(i): (a, h)
        for i, a, h in frame.select("SK_ID_CURR", APP_FEATURE, HISTORY_FEATURE).iter_rows()
    }


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_load_killed_half_way_over_a_complete_store_serves_whole_clients(
    stack: Stack, second_run: Path, tmp_path: Path, kind: str
) -> None:
    """A second run killed half-way: every client is served from one run or the other,
    whole (never its application from one run and its history from the other), and not
    one is NOT_FOUND; the marker still names the first run."""
    settings = store_settings(kind, tmp_path)
    materialize(settings, stack.features_dir, progress=False)
    register(settings, stack)
    first = MarkerStore(open_store(settings)).read()[VIEWS]
    served = serve(stack, settings, tmp_path)
    try:
        kill_half_way(settings, second_run)
        assert MarkerStore(open_store(settings)).read()[VIEWS].run_id == first.run_id
        old, new = expected_pairs(stack.features_dir), expected_pairs(second_run)
        stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served.scoring_address))
        outcome = {"old": 0, "new": 0}
        for client_id in old:
            got = features_of(stub, client_id)
            assert not isinstance(got, str), (client_id, got)  # never NOT_FOUND, never refused
            if got == old[client_id]:
                outcome["old"] += 1
            else:
                assert got == new[client_id], (client_id, got, old[client_id], new[client_id])
                outcome["new"] += 1
        # Really half-way: some clients rewritten, some not.
        assert outcome["new"] > 0 and outcome["old"] > 0, outcome
        assert health(served.scoring_address, SCORING_SERVICE) == SERVING
        print(f"\n{kind}: killed half-way, clients served from the old run / the new: {outcome}")
    finally:
        served.stop()
        teardown(settings)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_load_killed_half_way_into_an_empty_store_is_503_never_404(
    stack: Stack, keys: tuple[Path, str], tmp_path: Path, kind: str
) -> None:
    settings = store_settings(kind, tmp_path)
    # The feature service exists (a model registered), the store has never been complete.
    from training.feature_store.materialize import apply_repo, export_offline

    export_offline(settings, stack.features_dir)
    apply_repo(open_store(settings), settings, stack.features_dir)
    register(settings, stack)
    served = serve(stack, settings, tmp_path)
    gateway = settings_for(
        keys[0],
        f"sqlite:///{tmp_path / 'decisions.db'}",
        served.scoring_address,
        served.explainer_address,
    )
    headers = {"X-API-Key": keys[1]}
    try:
        kill_half_way(settings, stack.features_dir)
        assert MarkerStore(open_store(settings)).read() == {}
        reader = OnlineFeatureReader(open_store(settings))
        ids = [int(i) for i in stack.features["SK_ID_CURR"]]
        version = stack.model.model_version
        written = [i for i in ids[:600] if _stored(reader, i, version)]
        assert written, "nothing was written before the kill: the test proves nothing"
        stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served.scoring_address))
        explain = explainer_pb2_grpc.ExplainerServiceStub(
            grpc.insecure_channel(served.explainer_address)
        )
        for client_id in [*written[:20], ids[-1], UNKNOWN_CLIENT]:
            assert features_of(stub, client_id) == "UNAVAILABLE:feature-store-incomplete"
            with pytest.raises(grpc.RpcError) as caught:
                explain.Explain(
                    explainer_pb2.ExplainRequest(client_id=client_id, model_version=version),
                    timeout=10,
                )
            assert reason(caught.value) == "feature-store-incomplete"
        assert health(served.scoring_address, SCORING_SERVICE) == NOT_SERVING
        assert health(served.explainer_address, EXPLAINER_SERVICE) == NOT_SERVING
        with running(gateway) as client:
            response = client.post("/v1/scores", json={"client_id": written[0]}, headers=headers)
            assert response.status_code == 503 and response.json()["type"] == INCOMPLETE
            assert client.get("/readyz").status_code == 503
            materialize(settings, stack.features_dir, progress=False)  # the run done again
            wait_for(lambda: client.get("/readyz").status_code == 200)
            response = client.post("/v1/scores", json={"client_id": written[0]}, headers=headers)
            assert response.status_code == 200, response.text
    finally:
        served.stop()
        teardown(settings)


def _stored(reader: OnlineFeatureReader, client_id: int, version: str) -> bool:
    try:
        reader.get_client_features(client_id, version)
    except KeyError:  # UnknownClient
        return False
    return True


def test_guard_without_a_reachable_store_keeps_its_last_state(stack: Stack, tmp_path: Path) -> None:
    """Redis down is "unreachable" (the reads say so), not "incomplete": the last known
    state stands and nothing flips until the store answers again."""
    from services.common.store_guard import StoreGuard

    settings = FeatureStoreSettings(
        online_store="redis",
        data_dir=tmp_path / "down",
        project="test_complete_down",
        redis_connection="127.0.0.1:1,db=11",  # nothing listens on port 1
    )
    guard = StoreGuard(MarkerStore(open_store(settings)), check_seconds=60)
    assert guard.check() is False
    assert guard.state(VIEWS) is None
    with pytest.raises(ValueError, match="check_seconds"):
        StoreGuard(MarkerStore(open_store(settings)), check_seconds=0)


def test_client_answers(stack: Stack) -> None:
    """The shared stack (SQLite, complete) still says NOT_FOUND for an unknown client."""
    stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(stack.scoring_address))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Score(scoring_pb2.ScoreRequest(client_id=UNKNOWN_CLIENT), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason(caught.value) is None


# -- Redis Cluster ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """A real three-node Redis Cluster (no replicas, no persistence) on free ports."""
    require_redis()
    with local_redis_cluster(tmp_path_factory.mktemp("cluster"), masters=3) as ports:
        yield ports


def test_redis_cluster_marker_emptied_and_reloaded(
    stack: Stack, tmp_path: Path, redis_cluster: list[int]
) -> None:
    """The same on a Redis Cluster: the marker is routed like any key, a FLUSHALL of every
    node is 503 at once and NOT_SERVING, a new load brings SERVING back without restart."""
    settings = FeatureStoreSettings(
        online_store="redis-cluster",
        data_dir=tmp_path / "cluster",
        project=f"test_complete_{uuid.uuid4().hex[:8]}",
        redis_connection=f"127.0.0.1:{redis_cluster[0]}",
    )
    materialize(settings, stack.features_dir, progress=False)
    register(settings, stack)
    found = MarkerStore(open_store(settings)).read()
    assert found[VIEWS].clients == len(stack.features)
    assert found[service_name(stack.model.model_version)].run_id == found[VIEWS].run_id
    served = serve(stack, settings, tmp_path)
    stub = scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served.scoring_address))
    client_id = int(stack.train_ids[4])
    try:
        wait_for(lambda: health(served.scoring_address, SCORING_SERVICE) == SERVING)
        assert stub.Score(scoring_pb2.ScoreRequest(client_id=client_id), timeout=10).probability
        for port in redis_cluster:
            redis.Redis(port=port).flushall()
        assert features_of(stub, client_id) == "UNAVAILABLE:feature-store-incomplete"
        wait_for(lambda: health(served.scoring_address, SCORING_SERVICE) == NOT_SERVING)
        materialize(settings, stack.features_dir, progress=False)
        wait_for(lambda: health(served.scoring_address, SCORING_SERVICE) == SERVING)
        assert stub.Score(scoring_pb2.ScoreRequest(client_id=client_id), timeout=10).probability
    finally:
        served.stop()


def test_materialize_if_stale_trusts_the_store_marker_not_the_local_stamp(
    stack: Stack, tmp_path: Path
) -> None:
    """`credit materialize --if-stale` (what `make up` runs): a store whose marker is gone
    (Redis emptied, a load killed) is loaded again although the local stamp says current."""
    project = f"test_complete_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "FEATURES_DIR": str(stack.features_dir),
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": stack.tracking_uri,
        "FEATURE_STORE_DIR": str(tmp_path / "fs"),
        "FEAST_PROJECT": project,
        "ONLINE_STORE": "sqlite",
        "LOG_FORMAT": "json",
        # models are cached under the temp dir: not another registry's version 1
        "TMPDIR": str(tmp_path),
    }

    def run() -> str:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "credit"), "materialize", "--if-stale"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "clients" in run()  # the first load
    settings = FeatureStoreSettings(data_dir=tmp_path / "fs", project=project)
    markers = MarkerStore(open_store(settings))
    assert service_name(stack.model.model_version) in markers.read()
    assert "online store is current" in run()
    markers.clear()  # the data's marker gone, MATERIALIZED.json still there
    assert "clients" in run()  # loaded again
    assert service_name(stack.model.model_version) in markers.read()
    # A store materialised before the client index existed: loaded again, once.
    index = ClientIndex(open_store(settings))
    index.clear()
    assert "no client index" in run() and index.search("1", 1)
    assert "online store is current" in run()
