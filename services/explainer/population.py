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
from serving_core.bundle import ScoringModel

NEIGHBOUR_FEATURES = 8  # the most important numeric features span the similarity space
# The comparison group has one fixed size: with two sizes, the difference of their default
# counts would be the outcome of the clients in between. 30 keeps one client's outcome a
# small share of the rate while staying "similar".
NEIGHBOURS_K = 30
MAX_VALUE_FEATURES = 8
# A histogram cell (bin or category) smaller than this could tell a client's outcome to
# anyone who knows their value: cells are merged until each holds at least this many.
MIN_CELL = 20


@dataclass(frozen=True)
class Neighbour:
    """One of a client's nearest training clients, anonymised: no id, outcome or score."""

    distance: float
    values: dict[str, float]


@dataclass(frozen=True)
class Neighbourhood:
    """The k nearest training clients: an outcome aggregate and outcome-free points."""

    k: int
    defaulted: int
    neighbours: list[Neighbour]

    @property
    def default_rate(self) -> float:
        return self.defaulted / self.k if self.k else 0.0


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
        # Values a neighbour may show (outcome-free): the numeric features of the sample.
        self.numeric_values = {
            name: reference[name].to_numpy(dtype=np.float64)
            for name in sorted(numeric)
            if name in reference.columns
        }

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        scaled = (values - self.center) / self.scale
        return np.where(np.isnan(scaled), 0.0, scaled)  # missing sits at the median

    def distribution(self, feature: str) -> dict[str, Any]:
        """The feature's counts by outcome, with cells under MIN_CELL clients merged."""
        if feature not in self.features:
            raise NotFound(f"no population statistics for feature {feature[:40]!r}")
        stats = dict(self.features[feature])
        if "counts" in stats:
            stats["counts"] = merge_categories(stats["counts"])
        elif "histogram" in stats:
            edges, repaid, defaulted, hidden = merge_bins(
                list(stats.get("bin_edges", [])),
                [int(v) for v in stats["histogram"].get("0", [])],
                [int(v) for v in stats["histogram"].get("1", [])],
            )
            stats["bin_edges"] = edges
            stats["histogram"] = {"0": repaid, "1": defaulted, HIDDEN: hidden}
        return stats

    def neighbours(
        self,
        features: dict[str, Any],
        k: int = 0,
        exclude: int | None = None,
        values_of: list[str] | tuple[str, ...] = (),
    ) -> Neighbourhood:
        if k not in (0, NEIGHBOURS_K):
            raise InvalidArgument("k", f"the comparison group has a fixed size of {NEIGHBOURS_K}")
        if len(values_of) > MAX_VALUE_FEATURES:
            raise InvalidArgument("features", f"at most {MAX_VALUE_FEATURES} features")
        unknown = [name for name in values_of if name not in self.numeric_values]
        if unknown:
            # Like an unknown feature's population (above): NOT_FOUND, the gateway's 404.
            raise NotFound(f"features: no numeric feature {unknown[0][:20]!r} in this model")
        query = np.array(
            [
                [
                    np.nan if features.get(n) is None else float(features[n])
                    for n in self.neighbour_features
                ]
            ]
        )
        distances = np.sqrt(((self.points - self._scaled(query)) ** 2).sum(axis=1))
        if exclude is not None:
            distances = np.where(self.ids == exclude, np.inf, distances)
        nearest = np.argsort(distances, kind="stable")[:NEIGHBOURS_K]
        columns = {name: self.numeric_values[name] for name in values_of}
        return Neighbourhood(
            k=len(nearest),
            defaulted=int(self.outcomes[nearest].sum()),
            neighbours=[
                Neighbour(
                    float(distances[i]),
                    {name: float(col[i]) for name, col in columns.items() if col[i] == col[i]},
                )  # NaN (missing) is left out
                for i in nearest
            ],
        )


OTHER = "Other"
HIDDEN = "hidden"  # beside "0" (repaid) and "1" (defaulted): clients counted, outcome not shown


def merge_bins(
    edges: list[float], repaid: list[int], defaulted: list[int], minimum: int = MIN_CELL
) -> tuple[list[float], list[int], list[int], list[int]]:
    """Merge each non-empty bin holding fewer than ``minimum`` clients into an adjacent
    one (the smaller neighbour) until none is left; empty bins stay (they tell nothing).
    Edges keep their meaning: the merged bin spans both. Returns the edges, and per bin the
    clients who repaid, who defaulted, and whose outcome is hidden: all of them, when even
    the whole lot is under ``minimum`` (counted, never split by outcome)."""
    edges, repaid, defaulted = list(edges), list(repaid), list(defaulted)
    if len(edges) != len(repaid) + 1 or len(repaid) != len(defaulted):
        return edges, repaid, defaulted, [0] * len(repaid)
    while len(repaid) > 1:
        totals = [r + d for r, d in zip(repaid, defaulted, strict=True)]
        small = [i for i, t in enumerate(totals) if 0 < t < minimum]
        if not small:
            break
        i = min(small, key=lambda j: totals[j])
        if i == 0:
            j = 1
        elif i == len(totals) - 1:
            j = i - 1
        else:
            j = i - 1 if totals[i - 1] <= totals[i + 1] else i + 1
        low, high = min(i, j), max(i, j)
        repaid[low] += repaid[high]
        defaulted[low] += defaulted[high]
        del repaid[high], defaulted[high], edges[high]
    if len(repaid) == 1 and 0 < repaid[0] + defaulted[0] < minimum:
        return edges, [0], [0], [repaid[0] + defaulted[0]]  # no split can be shown safely
    return edges, repaid, defaulted, [0] * len(repaid)


def merge_categories(
    counts: dict[str, dict[str, int]], minimum: int = MIN_CELL
) -> dict[str, dict[str, int]]:
    """Categories with fewer than ``minimum`` clients pooled as "Other"; a pool still too
    small takes in the smallest remaining category. When even that leaves it under
    ``minimum`` (the whole feature), its clients are counted under ``HIDDEN``, never split
    by outcome."""
    repaid, defaulted = dict(counts.get("0", {})), dict(counts.get("1", {}))
    names = set(repaid) | set(defaulted)
    total = {c: int(repaid.get(c, 0)) + int(defaulted.get(c, 0)) for c in names}
    small = {c for c, t in total.items() if 0 < t < minimum}
    if not small:
        return counts
    large = sorted((c for c in names if c not in small and total[c] > 0), key=total.__getitem__)
    if sum(total[c] for c in small) < minimum and large:
        small.add(large.pop(0))
    pooled_r = sum(int(repaid.pop(c, 0)) for c in small)
    pooled_d = sum(int(defaulted.pop(c, 0)) for c in small)
    if pooled_r + pooled_d < minimum:  # the whole feature is too small to split
        return {"0": repaid, "1": defaulted, HIDDEN: {OTHER: pooled_r + pooled_d}}
    repaid[OTHER] = repaid.get(OTHER, 0) + pooled_r
    defaulted[OTHER] = defaulted.get(OTHER, 0) + pooled_d
    return {"0": repaid, "1": defaulted}
