"""Feast repo definitions for the ``feast`` CLI (``cd feature_repo && feast plan``).

The objects come from ``serving_core.feature_store.definitions`` (generated from the feature
schema), the same code ``training.feature_store.materialize`` applies, so the CLI and the
Python driver never disagree. ``FEATURES_DIR`` points at the pipeline's output.
"""

from __future__ import annotations

import os
from pathlib import Path

from serving_core.feature_store.definitions import OFFLINE_FILE, definitions
from serving_core.feature_store.settings import FeatureStoreSettings
from training.features.pipeline import load_feature_schema

_REPO_ROOT = Path(__file__).resolve().parents[1]
_features_dir = Path(os.environ.get("FEATURES_DIR", _REPO_ROOT / "artifacts" / "features"))
_offline = (_REPO_ROOT / FeatureStoreSettings().offline_dir / OFFLINE_FILE).resolve()

client, client_application, client_history, application_on_demand = definitions(
    load_feature_schema(_features_dir), _offline
)
