"""One default MLflow registry for every component.

`credit services start` run by hand found no model after `make train`: the registry the
services read by default must be the one training registers into, whether the URI comes
from the Makefile (make up), from the CLI's settings (credit train) or from the services'
own settings (python -m services.scoring). Defined once, in credit.settings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from credit.settings import DEFAULT_TRACKING_URI, PlatformSettings
from services.explainer.settings import ExplainerSettings
from services.scoring.settings import ScoringSettings
from tests.settings_env import env_claims
from tests.test_train_mlflow import write_features
from training.train import resolve_tracking_uri

REPO = Path(__file__).resolve().parents[1]
CREDIT = Path(sys.executable).parent / "credit"


def _tracking_names() -> set[str]:
    """Every environment name a settings field holding the tracking URI reads."""
    fields = {
        "credit.settings.PlatformSettings.mlflow_tracking_uri",
        "services.common.settings.GrpcServiceSettings.tracking_uri",
    }
    return {c.env for c in env_claims() if c.meaning in fields}


def test_every_component_defaults_to_the_same_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _tracking_names():
        monkeypatch.delenv(name, raising=False)
    assert PlatformSettings().mlflow_tracking_uri == DEFAULT_TRACKING_URI
    assert ScoringSettings().tracking_uri == DEFAULT_TRACKING_URI
    assert ExplainerSettings().tracking_uri == DEFAULT_TRACKING_URI
    assert resolve_tracking_uri(None) == DEFAULT_TRACKING_URI
    (makefile,) = re.findall(
        r"^export MLFLOW_TRACKING_URI \?= (\S+)$", (REPO / "Makefile").read_text(), re.M
    )
    assert makefile == DEFAULT_TRACKING_URI
    # Set once, every component follows it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    assert {
        PlatformSettings().mlflow_tracking_uri,
        ScoringSettings().tracking_uri,
        ExplainerSettings().tracking_uri,
        resolve_tracking_uri(None),
    } == {"sqlite:////elsewhere/mlflow.db"}


SERVED = """
import json
from services.common.registry import ModelRegistry
from services.explainer.settings import ExplainerSettings
from services.scoring.settings import ScoringSettings

scoring = ScoringSettings()
registry = ModelRegistry(scoring.registry_settings(scoring.model_alias))
version = registry.alias_version()
explainer = ModelRegistry(ExplainerSettings().registry_settings())
print(json.dumps({"champion": version, "loaded": registry.load(version).model_version,
                  "explainer": explainer.load(version).model_version}))
"""


@pytest.mark.slow
def test_the_services_serve_what_credit_train_registered(tmp_path: Path) -> None:
    """`credit train`, then the services' settings as `credit services start` starts them
    (same folder, nothing set): they find the champion training registered. Subprocesses,
    as in real use: MLflow keeps one engine per URI per process, and the URI is relative."""
    work = tmp_path / "checkout"
    work.mkdir()
    features = write_features(tmp_path / "features", seed=0, informative=True)
    env = {k: v for k, v in os.environ.items() if k.upper() not in _tracking_names()}
    env |= {
        "FEATURES_DIR": str(features),
        "ARTIFACTS_DIR": str(work / "artifacts"),
        "FEATURE_STORE_DIR": str(work / "no-store"),  # no store: no feature services
        "SCORING_CACHE_DIR": str(tmp_path / "cache"),
        "EXPLAINER_CACHE_DIR": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }

    def run(*command: str) -> str:
        done = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    run(str(CREDIT), "train", "--quick", "--folds", "2")
    assert (work / "mlruns" / "mlflow.db").is_file()  # the default: the checkout's mlruns/
    served = run(sys.executable, "-c", SERVED)
    metrics = json.loads((work / "artifacts" / "metrics.json").read_text())
    assert json.loads(served.strip().splitlines()[-1]) == {
        "champion": metrics["model_version"],
        "loaded": metrics["model_version"],
        "explainer": metrics["model_version"],
    }
