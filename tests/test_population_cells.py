"""No published count tells one client's outcome (services/explainer/population.py,
reference.py): small cells are merged, and what is still under the minimum is counted with
its outcome hidden, never reported as repaid."""

from __future__ import annotations

import numpy as np

from services.explainer import reference
from services.explainer.population import HIDDEN, OTHER, merge_bins, merge_categories


def test_small_bins_merge_into_a_neighbour_and_the_outcomes_stay() -> None:
    edges, repaid, defaulted, hidden = merge_bins([0, 1, 2, 3], [30, 5, 40], [3, 1, 4])
    assert edges == [0, 1, 3] or edges == [0, 2, 3]
    assert sum(repaid) == 75 and sum(defaulted) == 8 and hidden == [0, 0]
    assert all(r + d >= 20 for r, d in zip(repaid, defaulted, strict=True))


def test_a_whole_feature_under_the_minimum_is_counted_with_its_outcome_hidden() -> None:
    edges, repaid, defaulted, hidden = merge_bins([0, 1, 2], [8, 4], [3, 1])
    assert (edges, repaid, defaulted, hidden) == ([0, 2], [0], [0], [16])
    counts = merge_categories({"0": {"a": 5, "b": 4}, "1": {"a": 2, "b": 1}})
    assert counts == {"0": {}, "1": {}, HIDDEN: {OTHER: 12}}
    # Enough clients overall: pooled, split as before, nothing hidden.
    counts = merge_categories({"0": {"a": 5, "b": 40}, "1": {"a": 2, "b": 10}})
    assert HIDDEN not in counts and counts["0"][OTHER] + counts["1"][OTHER] == 57


def test_a_side_of_the_threshold_under_the_minimum_hides_its_outcome() -> None:
    """Ten clients above the threshold: counted on their side, never as repaid."""
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0.0, 0.09, 500), rng.uniform(0.2, 0.6, 10)])
    defaulted = np.concatenate([rng.random(500) < 0.05, np.ones(10, dtype=bool)])
    bins = reference._bins(p, defaulted, threshold=0.1, width=0.01, minimum=20)
    above = [b for b in bins if b.lower >= 0.1 and b.repaid + b.defaulted + b.hidden]
    assert [(b.repaid, b.defaulted, b.hidden) for b in above] == [(0, 0, 10)]
    below = [b for b in bins if b.upper <= 0.1]
    assert sum(b.repaid + b.defaulted for b in below) == 500
    assert all(b.hidden == 0 for b in below)
