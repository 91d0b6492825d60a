"""Feast feature store: definitions, materialisation and the online read path."""

from training.feature_store.bench import bench_feature_store
from training.feature_store.completeness import VIEWS, Marker, MarkerStore
from training.feature_store.materialize import apply_repo, export_offline, materialize, open_store
from training.feature_store.reader import (
    FeatureServiceMismatch,
    FeatureStoreError,
    IncompleteClient,
    OnlineFeatureReader,
    StaleFeatures,
    UnknownClient,
    UnknownModelVersion,
    register_model_features,
    service_name,
)
from training.feature_store.settings import FeatureStoreSettings

__all__ = [
    "VIEWS",
    "FeatureServiceMismatch",
    "FeatureStoreError",
    "FeatureStoreSettings",
    "IncompleteClient",
    "Marker",
    "MarkerStore",
    "OnlineFeatureReader",
    "StaleFeatures",
    "UnknownClient",
    "UnknownModelVersion",
    "apply_repo",
    "bench_feature_store",
    "export_offline",
    "materialize",
    "open_store",
    "register_model_features",
    "service_name",
]
