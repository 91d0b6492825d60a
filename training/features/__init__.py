"""Feature engineering: one pipeline from the typed tables to one row per client."""

from training.features.frame import model_columns, model_matrix
from training.features.pipeline import (
    FEATURES_FILE,
    SCHEMA_FILE,
    build_features,
    load_feature_schema,
)

__all__ = [
    "FEATURES_FILE",
    "SCHEMA_FILE",
    "build_features",
    "load_feature_schema",
    "model_columns",
    "model_matrix",
]
