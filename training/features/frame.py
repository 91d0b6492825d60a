"""Feature rows -> the model's input matrix (one function for training and serving)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def model_columns(schema: dict[str, Any], *, use_protected: bool = False) -> list[str]:
    return [
        f["name"] for f in schema["features"] if use_protected or not f.get("protected", False)
    ]


def model_matrix(
    frame: pd.DataFrame, schema: dict[str, Any], columns: list[str] | None = None
) -> pd.DataFrame:
    """Columns in schema order; numerics float64; categoricals with the schema's fixed
    categories, so a value never seen at training time becomes missing, not a new code."""
    by_name = {f["name"]: f for f in schema["features"]}
    names = columns if columns is not None else [f["name"] for f in schema["features"]]
    out = {}
    for name in names:
        spec = by_name[name]
        values = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        if spec["dtype"] == "category":
            out[name] = pd.Categorical(values.astype("object"), categories=spec["categories"])
        else:
            out[name] = pd.to_numeric(values, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)
