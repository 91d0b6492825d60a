"""Settings of different components share one environment: no name may mean two things.

`make up DATA_DIR=/path/to/kaggle` exports DATA_DIR for the Kaggle loader
(PlatformSettings.data_dir); the feature-store settings accepted ``data_dir`` as an alias of
FEATURE_STORE_DIR, pydantic-settings matched it case-insensitively to DATA_DIR, and the
feature store (a ~480 MB SQLite online store, the Feast registry, offline Parquet) was written
into the user's Kaggle folder. Every settings class is walked here with the environment
names pydantic-settings reads for it (tests/settings_env.py).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from serving_core.feature_store.settings import FeatureStoreSettings
from tests.settings_env import EnvClaim, declared_settings_classes, env_claims, settings_classes

# Names read by several components on purpose, because they must agree across processes.
SHARED = {
    "MLFLOW_TRACKING_URI": "one MLflow registry: the jobs register models where the services "
    "load them (and MLflow itself reads it)",
    "MODEL_NAME": "the registered model: training registers under it, the services serve it",
    "LOG_FORMAT": "one log format for every process of a deployment (defaults may differ: the "
    "CLI's auto picks console on a terminal)",
}


def _meanings(claims: list[EnvClaim]) -> dict[str, dict[str, set[str]]]:
    """Environment name -> meaning (declaring field) -> classes reading it so."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for claim in claims:
        found[claim.env][claim.meaning].add(claim.reader)
    return found


def test_every_settings_class_in_the_packages_is_walked() -> None:
    walked = {f"{c.__module__}.{c.__qualname__}" for c in settings_classes()}
    declared = declared_settings_classes()
    assert "serving_core.feature_store.settings.FeatureStoreSettings" in declared
    assert "services.scoring.settings.ScoringSettings" in declared  # through a subclass
    assert declared <= walked, f"not imported by tests/settings_env.py: {declared - walked}"


def test_no_two_settings_claim_one_environment_name_with_different_meanings() -> None:
    clashes = {
        env: {meaning: sorted(readers) for meaning, readers in meanings.items()}
        for env, meanings in _meanings(env_claims()).items()
        if len(meanings) > 1 and env not in SHARED
    }
    assert not clashes, f"one environment name, several settings: {clashes}"


def test_the_shared_names_are_shared() -> None:
    """An allow-list entry nothing shares any more is stale: remove it."""
    meanings = _meanings(env_claims())
    assert {env: len(meanings[env]) for env in SHARED} == dict.fromkeys(SHARED, 2) | {
        "LOG_FORMAT": 3
    }


def test_the_checker_sees_names_that_come_from_field_names() -> None:
    """populate_by_name makes a field's name an environment name too: the walk must see it
    (the hand-written copy it replaces read only the aliases of an aliased field)."""
    claims = {(c.env, c.meaning) for c in env_claims()}
    store = "serving_core.feature_store.settings.FeatureStoreSettings.store_dir"
    assert ("FEATURE_STORE_DIR", store) in claims
    assert ("STORE_DIR", store) in claims
    assert ("DATA_DIR", "credit.settings.PlatformSettings.data_dir") in claims
    assert not any(env == "DATA_DIR" and meaning == store for env, meaning in claims)


def test_data_dir_in_the_environment_is_not_the_feature_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FEATURE_STORE_DIR", raising=False)
    for name in ("DATA_DIR", "data_dir"):
        monkeypatch.setenv(name, str(tmp_path / "kaggle"))
        assert FeatureStoreSettings().store_dir == Path("data/feature_store")
        monkeypatch.delenv(name)
    monkeypatch.setenv("FEATURE_STORE_DIR", str(tmp_path / "store"))
    assert FeatureStoreSettings().store_dir == tmp_path / "store"
    # The Python keyword callers use still works (and wins over the environment).
    assert FeatureStoreSettings(data_dir=tmp_path / "kw").store_dir == tmp_path / "kw"
    assert FeatureStoreSettings(store_dir=tmp_path / "kw").data_dir == tmp_path / "kw"
    with pytest.raises(TypeError):
        FeatureStoreSettings(data_dir=tmp_path / "a", store_dir=tmp_path / "b")
