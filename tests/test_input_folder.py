"""An input folder is never written to: `credit data prepare`, `credit features build`,
`credit train --quick` and `credit materialize` (what `make data`, `make train` and
`make materialize` run) with DATA_DIR naming a Kaggle-style folder leave that folder byte
for byte as it was.

The feature store used to read DATA_DIR as its own folder and wrote its registry, its SQLite
online store, the offline Parquet and MATERIALIZED.json into the user's Kaggle download. The
folder is compared by checksums, not protected by permissions: root ignores read-only bits.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.synthetic.generate import generate

REPO = Path(__file__).resolve().parents[1]
CREDIT = Path(sys.executable).parent / "credit"
# Names the jobs' and the feature store's settings read: unset, so every job uses its
# defaults relative to the working folder, as `make` from a fresh checkout does.
UNSET = (
    "FEATURE_STORE_DIR",
    "STORE_DIR",
    "TABLES_DIR",
    "FEATURES_DIR",
    "RAW_DIR",
    "ARTIFACTS_DIR",
    "MLFLOW_TRACKING_URI",
    "ONLINE_STORE",
    "FEAST_PROJECT",
)

pytestmark = pytest.mark.slow


def checksums(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file (and '/' for every folder) under ``folder``."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        found[name] = "/" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_data_features_train_and_materialize_leave_the_data_dir_unchanged(tmp_path: Path) -> None:
    kaggle = tmp_path / "kaggle"  # the user's download: a copy, made here by the generator
    generate(kaggle, n_clients=400, seed=3, progress=False)
    before = checksums(kaggle)
    assert len(before) >= 8  # the eight Kaggle tables
    work = tmp_path / "checkout"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in UNSET and k.lower() != "data_dir"}
    env |= {"DATA_DIR": str(kaggle), "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    for command in (
        ["data", "prepare"],
        ["features", "build"],
        ["train", "--quick"],
        ["materialize"],
    ):
        done = subprocess.run(
            [str(CREDIT), *command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"credit {' '.join(command)}: {done.stderr[-3000:]}"
    assert checksums(kaggle) == before
    # The jobs did read the Kaggle folder, and wrote under the working folder.
    assert "kaggle" in (work / "data" / "tables" / "SOURCE.json").read_text()
    assert (work / "data" / "feature_store" / "registry.db").is_file()
    assert (work / "data" / "feature_store" / "MATERIALIZED.json").is_file()
    assert (work / "artifacts" / "metrics.json").is_file()  # the model went to the checkout
    assert (work / "mlruns").is_dir()
