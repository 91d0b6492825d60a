"""The training population of a model version: distributions by outcome and neighbours.

Both come from the reports saved with the version (population_stats.json and the
reference sample), never from raw data, so the dashboard can compare a client with others
through the API alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.common.errors import InvalidArgument, NotFound
from training.bundle import ScoringModel

NEIGHBOUR_FEATURES = 8  # the most important numeric features span the similarity space
MAX_NEIGHBOURS = 50


@dataclass(frozen=True)
class Neighbour:
    client_id: int
    distance: float
    defaulted: bool
    probability: float


class Population:
    def __init__(self, reports: Path, model: ScoringModel) -> None:
        stats = json.loads((reports / "population_stats.json").read_text())
        self.n = int(stats["n"])
        self.default_rate = float(stats["default_rate"])
        self.features: dict[str, dict[str, Any]] = stats["features"]
        importance = pd.read_csv(reports / "importance.csv")
        numeric = {f["name"] for f in model.schema["features"] if f["dtype"] == "float"}
        self.neighbour_features = [name for name in importance["feature"] if name in numeric][
            :NEIGHBOUR_FEATURES
        ]
        reference = pd.read_parquet(reports / "reference.parquet")
        values = reference[self.neighbour_features].to_numpy(dtype=np.float64)
        # Robust scaling: credit amounts and day counts have heavy tails.
        self.center = np.nanmedian(values, axis=0)
        q75, q25 = np.nanpercentile(values, [75, 25], axis=0)
        self.scale = np.where(q75 - q25 > 0, q75 - q25, 1.0)
        self.points = self._scaled(values)
        self.ids = reference["SK_ID_CURR"].to_numpy()
        self.outcomes = reference["TARGET"].to_numpy().astype(bool)
        self.predictions = reference["prediction"].to_numpy()

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        scaled = (values - self.center) / self.scale
        return np.where(np.isnan(scaled), 0.0, scaled)  # missing sits at the median

    def distribution(self, feature: str) -> dict[str, Any]:
        if feature not in self.features:
            raise NotFound(f"no population statistics for feature {feature!r}")
        return self.features[feature]

    def neighbours(
        self, features: dict[str, Any], k: int, exclude: int | None = None
    ) -> list[Neighbour]:
        k = k or 10
        if not 0 < k <= MAX_NEIGHBOURS:
            raise InvalidArgument("k", f"must be between 1 and {MAX_NEIGHBOURS}")
        query = np.array(
            [[np.nan if features.get(n) is None else float(features[n])
              for n in self.neighbour_features]]
        )  # fmt: skip
        distances = np.sqrt(((self.points - self._scaled(query)) ** 2).sum(axis=1))
        if exclude is not None:
            distances = np.where(self.ids == exclude, np.inf, distances)
        nearest = np.argsort(distances, kind="stable")[:k]
        return [
            Neighbour(int(self.ids[i]), float(distances[i]), bool(self.outcomes[i]),
                      float(self.predictions[i]))
            for i in nearest
        ]  # fmt: skip
