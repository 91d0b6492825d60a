"""Feature rows -> the model's input matrix (one function for training and serving)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NAN = float("nan")


def model_columns(schema: dict[str, Any], *, use_protected: bool = False) -> list[str]:
    return [f["name"] for f in schema["features"] if use_protected or not f.get("protected", False)]


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
    pandas: ~0.04 ms instead of ~30 ms per row, which is what single-row serving needs.
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
        self._encoders = list(zip(self.columns, self._codes, strict=True))

    def encode(self, features: dict[str, Any]) -> np.ndarray:
        # A list turned into an array once: setting ~200 numpy items one at a time made
        # this twice as slow (70 µs against 35 for a 216-feature row).
        values: list[float] = []
        append = values.append
        for name, codes in self._encoders:
            value = features.get(name)
            if value is None:
                append(NAN)
            elif codes is not None:
                append(codes.get(value, NAN))
            elif type(value) is float:
                append(value)
            else:
                try:
                    append(float(value))
                except (TypeError, ValueError):  # a non-number is missing, as in model_matrix
                    append(NAN)
        return np.array([values], dtype=np.float64)
