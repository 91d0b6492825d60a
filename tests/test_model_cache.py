"""The services' on-disk model cache: one cache folder shared by several MLflow registries.

Two real registries (SQLite, each in its own folder) that both hold version 1 of a different
model, one cache folder, as on a host with two checkouts: each registry must serve its own
model. The cache used to be keyed by ``<name>/<version>`` only, so whichever registry loaded
version 1 first served it to the other one too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from services.common.registry import (
    IDENTITY_FILE,
    ModelRegistry,
    RegistrySettings,
    registry_key,
)
from serving_core.bundle import META_FILE, ScoringModel
from tests.test_train_mlflow import MODEL, write_features
from training.train import run_training

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# Four small trainings (~20 s each on a busy 2-core box).
pytestmark = pytest.mark.slow


def _train(root: Path, *, seed: int, informative: bool) -> dict[str, Any]:
    """A model registered as the first version of ``MODEL`` in a fresh registry at ``root``."""
    metrics = run_training(
        write_features(root / "features", seed=seed, informative=informative),
        root / "artifacts",
        tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        model_name=MODEL,
        quick=True,
        progress=False,
    )
    assert metrics["model_version"] == "1"
    return metrics


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    root = tmp_path_factory.mktemp("two-registries")
    found = []
    for name, seed, informative in (("a", 0, True), ("b", 1, False)):
        metrics = _train(root / name, seed=seed, informative=informative)
        frame = pd.read_parquet(root / name / "features" / "features.parquet")
        found.append(
            {
                "root": root / name,
                "uri": metrics["tracking_uri"],
                "run_id": metrics["run_id"],
                # What this registry's version 1 predicts, from the bundle training wrote.
                "expected": ScoringModel.load(root / name / "artifacts" / "model").predict_proba(
                    frame
                ),
                "frame": frame,
            }
        )
    return found


def _registry(uri: str, cache: Path) -> ModelRegistry:
    return ModelRegistry(RegistrySettings(tracking_uri=uri, model_name=MODEL, cache_dir=cache))


def test_two_registries_with_version_1_each_serve_their_own_model(
    registries: list[dict[str, Any]], tmp_path: Path
) -> None:
    cache = tmp_path / "credit-models"  # one cache folder for both, as in <tmp>/credit-models
    a, b = registries
    assert a["run_id"] != b["run_id"]
    # The two models really differ, or the test could not tell them apart.
    assert not np.allclose(a["expected"], b["expected"])
    for _ in range(2):  # second round: both served from the cache, still each its own
        for registry in (a, b):
            model = _registry(registry["uri"], cache).load("1")
            assert model.model_version == "1"
            np.testing.assert_allclose(model.predict_proba(registry["frame"]), registry["expected"])
    # Each registry's reports are its own run's too.
    for registry in (a, b):
        reports = _registry(registry["uri"], cache).reports("1")
        assert json.loads((reports / "metrics.json").read_text())["run_id"] == registry["run_id"]
    identities = [json.loads(p.read_text()) for p in cache.rglob(IDENTITY_FILE)]
    assert sorted(i["run_id"] for i in identities) == sorted([a["run_id"], b["run_id"]])


def _train_and_serve(root: str, cache: str, seed: int, informative: bool) -> None:
    """Run in a fresh process: train version 1 into a new registry at ``root``, then check
    that loading version 1 through ``cache`` serves exactly the model just trained."""
    metrics = _train(Path(root), seed=seed, informative=informative)
    frame = pd.read_parquet(Path(root) / "features" / "features.parquet")
    expected = ScoringModel.load(Path(root) / "artifacts" / "model").predict_proba(frame)
    served = _registry(metrics["tracking_uri"], Path(cache)).load("1")
    np.testing.assert_allclose(served.predict_proba(frame), expected)
    print(json.dumps({"uri": metrics["tracking_uri"], "run_id": metrics["run_id"]}))


def test_a_registry_rebuilt_at_the_same_uri_is_not_served_the_old_model(
    tmp_path: Path,
) -> None:
    """Same URI, same version number, another model (``rm -rf mlruns``, train again, restart
    the services): the rebuilt registry's version 1 comes from another run, so the copy
    cached for the old registry is not served. One process per registry, as in real use
    (MLflow keeps one database engine per URI for the life of a process)."""
    cache, root = tmp_path / "cache", tmp_path / "registry"
    runs = []
    for seed, informative in ((0, True), (1, False)):
        shutil.rmtree(root, ignore_errors=True)
        code = (
            "import sys; from tests.test_model_cache import _train_and_serve; "
            "_train_and_serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1')"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(root), str(cache), str(seed), str(int(informative))],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(__file__).parent.parent,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["uri"] == runs[1]["uri"] and runs[0]["run_id"] != runs[1]["run_id"]
    # Both copies stay in the cache, each under its own key.
    assert len(list(cache.rglob(IDENTITY_FILE))) == 2


def test_a_cached_copy_that_does_not_match_the_registry_is_downloaded_again(
    registries: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Verified on load: a cached bundle whose recorded identity or version disagrees with
    what the registry says (here: the other registry's model copied over it, as the old
    layout did) is replaced by a fresh download, not served."""
    cache = tmp_path / "cache"
    a, b = registries
    _registry(a["uri"], cache).load("1")
    _registry(b["uri"], cache).load("1")
    (folder_a,) = [p.parent for p in cache.rglob(IDENTITY_FILE) if a["run_id"] in p.read_text()]
    (folder_b,) = [p.parent for p in cache.rglob(IDENTITY_FILE) if b["run_id"] in p.read_text()]
    shutil.rmtree(folder_a)
    shutil.copytree(folder_b, folder_a)  # b's model and b's identity under a's key
    model = _registry(a["uri"], cache).load("1")
    np.testing.assert_allclose(model.predict_proba(a["frame"]), a["expected"])
    assert a["run_id"] in (folder_a / IDENTITY_FILE).read_text()
    # A bundle that says it is another version is not served as this one either.
    (meta,) = folder_a.rglob(META_FILE)
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "model_version": "7"}))
    assert _registry(a["uri"], cache).load("1").model_version == "1"


def test_one_relative_uri_in_two_checkouts_names_two_registries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///mlruns/mlflow.db`` (the default) is relative to the working directory:
    two checkouts using it have two registries, and the cache keeps them apart."""
    keys = []
    for checkout in ("one", "two"):
        (tmp_path / checkout).mkdir()
        monkeypatch.chdir(tmp_path / checkout)
        keys.append(registry_key("sqlite:///mlruns/mlflow.db"))
    assert keys[0] != keys[1]
    assert keys[0] == f"sqlite:///{tmp_path / 'one' / 'mlruns' / 'mlflow.db'}"
    # An absolute URI names the same registry from anywhere.
    absolute = f"sqlite:///{tmp_path / 'one' / 'mlruns' / 'mlflow.db'}"
    assert registry_key(absolute) == keys[0]


def test_unregistered_version_is_not_found(
    registries: list[dict[str, Any]], tmp_path: Path
) -> None:
    from services.common.errors import NotFound

    with pytest.raises(NotFound):
        _registry(registries[0]["uri"], tmp_path / "cache").load("2")
    assert MlflowClient(registries[0]["uri"]).get_model_version(MODEL, "1").run_id
