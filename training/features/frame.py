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


class RowEncoder:
    """One client's features (a dict) -> the model's input row as a float array.

    Equal to ``model_matrix`` for that row (categories become the codes pandas gives them
    under the schema's fixed categories; missing and unseen values become NaN), without
    pandas: ~0.2 ms instead of ~30 ms per row, which is what single-row serving needs.
    """

    def __init__(self, schema: dict[str, Any], columns: list[str] | None = None) -> None:
        by_name = {f["name"]: f for f in schema["features"]}
        self.columns = columns if columns is not None else [f["name"] for f in schema["features"]]
        self._codes: list[dict[str, int] | None] = [
            {value: code for code, value in enumerate(by_name[name]["categories"])}
            if by_name[name]["dtype"] == "category"
            else None
            for name in self.columns
        ]

    def encode(self, features: dict[str, Any]) -> np.ndarray:
        row = np.full((1, len(self.columns)), np.nan)
        for i, (name, codes) in enumerate(zip(self.columns, self._codes, strict=True)):
            value = features.get(name)
            if value is None:
                continue
            if codes is not None:
                row[0, i] = codes.get(value, np.nan)
            else:
                try:
                    row[0, i] = float(value)
                except (TypeError, ValueError):
                    continue  # a non-number where a number belongs is missing, as in model_matrix
        return row
