"""What a new application may contain: numeric ranges from the data, every Kaggle category.

Standard library only: the gateway (request schema) and the gRPC services (validation) both
read it, so a partner meets one set of limits, whichever door they use.

Ranges come from the observed minimum and maximum of each application column in the
compact statistics shipped in ``serving_core/reference/synthetic_stats.json.gz`` (real Home
Credit applications), widened by a margin that depends on what the column measures: a
value beyond them is a typo, not an applicant. Categories are Kaggle's data dictionary:
every value of the application tables, including ``XNA`` (not available) and the few
values that occur only in the full data set (``Unemployed``, ``Student``, ...).
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

STATS = Path(__file__).with_name("reference") / "synthetic_stats.json.gz"
SCHEMA = Path(__file__).with_name("reference") / "schema.json"
MISSING = "XNA"
# Amounts (money) vary over orders of magnitude: a quarter of the smallest to four times
# the largest observed. Counts: up to four times the largest observed.
MONEY_FACTOR = 4.0
COUNT_FACTOR = 4.0
# Day offsets may reach a quarter of the observed span further into the past.
DAYS_MARGIN = 0.25
# Where the rule above would be wrong, the column's own meaning decides.
FIXED: dict[str, tuple[float, float]] = {
    "DAYS_BIRTH": (-36_525.0, -6_575.0),  # 18 to 100 years old
    "CNT_CHILDREN": (0.0, 20.0),  # Kaggle's largest: 19
    "CNT_FAM_MEMBERS": (1.0, 21.0),  # Kaggle's largest: 20 (21 in application_test)
    "HOUR_APPR_PROCESS_START": (0.0, 23.0),
    "OWN_CAR_AGE": (0.0, 100.0),  # years; Kaggle's largest: 91
    "REGION_RATING_CLIENT": (1.0, 3.0),
    "REGION_RATING_CLIENT_W_CITY": (1.0, 3.0),
}
# Values of Kaggle's full application tables absent from the statistics' sample (counts in
# the full application_train): CODE_GENDER XNA (4), NAME_INCOME_TYPE Maternity leave (5),
# Student (18), Unemployed (22), NAME_FAMILY_STATUS Unknown (2), ORGANIZATION_TYPE
# Trade: type 5 (49).
FULL_DATA_CATEGORIES: dict[str, tuple[str, ...]] = {
    "CODE_GENDER": (MISSING,),
    "NAME_INCOME_TYPE": ("Maternity leave", "Student", "Unemployed"),
    "NAME_FAMILY_STATUS": ("Unknown",),
    "ORGANIZATION_TYPE": ("Trade: type 5", MISSING),
}


def _observed(spec: dict[str, Any]) -> tuple[float, float]:
    values = spec.get("quantiles") or spec.get("values") or ()
    numbers = [float(v) for v in values]
    return min(numbers), max(numbers)


def _widen(name: str, low: float, high: float) -> tuple[float, float]:
    if name in FIXED:
        return FIXED[name]
    if low >= 0 and high <= 1:  # flags, shares, normalised scores (EXT_SOURCE_*, housing)
        return 0.0, 1.0
    if name.startswith("DAYS_"):
        return round(low - DAYS_MARGIN * (high - low)), 0.0
    if name.startswith("AMT_") and not name.startswith("AMT_REQ_"):
        return low / MONEY_FACTOR, high * MONEY_FACTOR
    if low >= 0:  # counts, ages of cars, shares of a population
        return 0.0, max(high * COUNT_FACTOR, 1.0)
    return low - abs(low), high + abs(high)


@cache
def numeric_ranges() -> dict[str, tuple[float, float]]:
    """Inclusive (low, high) of every numeric application column."""
    with gzip.open(STATS, "rt") as handle:
        columns = json.load(handle)["tables"]["application"]["columns"]
    schema = json.loads(SCHEMA.read_text())["tables"]["application_test"]["columns"]
    ranges: dict[str, tuple[float, float]] = {}
    for column in schema:
        name = column["name"]
        if column["kind"] not in ("int", "float") or name == "SK_ID_CURR":
            continue
        if name in columns:
            ranges[name] = _widen(name, *_observed(columns[name]))
        elif name in FIXED:
            ranges[name] = FIXED[name]
    return ranges


@cache
def kaggle_categories() -> dict[str, tuple[str, ...]]:
    """Every value Kaggle's data dictionary allows per categorical application column
    (``XNA`` included: it is valid, and means "not available")."""
    tables = json.loads(SCHEMA.read_text())["tables"]
    allowed: dict[str, set[str]] = {}
    for table in ("application_train", "application_test"):
        for column in tables[table]["columns"]:
            if column["kind"] == "category":
                allowed.setdefault(column["name"], set()).update(column.get("categories", ()))
    for name, extra in FULL_DATA_CATEGORIES.items():
        allowed.setdefault(name, set()).update(extra)
    return {name: tuple(sorted(values)) for name, values in allowed.items()}
