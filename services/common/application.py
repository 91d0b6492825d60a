"""A new application from the wire (credit.v1.Application) -> raw Kaggle fields, validated.

Both gRPC services receive new applications; this is the one place that decides what a
valid application is, and every rejection names the offending field (INVALID_ARGUMENT).
"""

from __future__ import annotations

import math
from typing import Any

from credit.v1 import common_pb2
from services.common.errors import InvalidArgument
from serving_core.fields import REQUIRED, TYPED_FIELDS
from serving_core.ranges import kaggle_categories, numeric_ranges
from serving_core.schema import CATEGORY_MISSING, DAYS_SENTINEL, kaggle_schema

# Inclusive ranges of every numeric field, from the data (serving_core.ranges): outside
# them the input is a typo, not an applicant.
RANGES: dict[str, tuple[float, float]] = numeric_ranges()


def _check_number(field: str, column: str, value: float) -> float:
    if not math.isfinite(value):
        raise InvalidArgument(field, "must be a finite number")
    if column == "DAYS_EMPLOYED" and value == DAYS_SENTINEL:
        return float(value)  # Kaggle's own code for "no employment date"
    low, high = RANGES.get(column, (-math.inf, math.inf))
    if not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _check_category(field: str, column: str, value: str) -> str | None:
    """A value of Kaggle's data dictionary, or None for ``XNA`` (Kaggle's "not available").

    Values the served model never saw in training are accepted here (they are valid) and
    scored as missing; the scoring service reports them (``unseen_categories``).
    """
    allowed = kaggle_categories().get(column, ())
    if value not in allowed:
        # A short prefix only: a 1 MB value in the message overflowed gRPC's trailer.
        shown = value if len(value) <= 20 else value[:20] + "..."
        raise InvalidArgument(field, f"unknown value {shown!r}; expected one of {list(allowed)}")
    return None if value == CATEGORY_MISSING else value


def unseen_categories(
    features: dict[str, Any], schema: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """A new application's features with the category values the model never saw in
    training set to missing (what the model's encoder does with them anyway, now also in the
    logged inputs), and those values as ``"FIELD=value"`` for the response."""
    flagged: list[str] = []
    cleaned = dict(features)
    for spec in schema["features"]:
        value = features.get(spec["name"])
        unseen = isinstance(value, str) and value not in spec.get("categories", ())
        if spec["dtype"] == "category" and unseen:
            flagged.append(f"{spec['name']}={value}")
            cleaned[spec["name"]] = None
    return cleaned, flagged


def application_to_raw(application: common_pb2.Application) -> dict[str, Any]:
    """Validated Kaggle application fields (SK_ID_CURR included when a client id is given)."""
    table = kaggle_schema()["application_test"]
    for field in REQUIRED:
        if not getattr(application, field):  # proto3 scalars: "" or 0 mean "not sent"
            raise InvalidArgument(field, "is required")
    raw: dict[str, Any] = {}
    for field, column in TYPED_FIELDS.items():
        optional = application.DESCRIPTOR.fields_by_name[field].has_presence
        if optional and not application.HasField(field):
            continue
        value = getattr(application, field)
        if table.column(column).kind == "category":
            category = _check_category(field, column, value)
            if category is not None:
                raw[column] = category
        else:
            raw[column] = _check_number(field, column, float(value))
    # Kaggle codes "no employment" (pensioners, unemployed) as 365243, never as missing: an
    # applicant without an employment date must reach the features exactly as in training.
    raw.setdefault("DAYS_EMPLOYED", DAYS_SENTINEL)
    if raw["AMT_ANNUITY"] > raw["AMT_CREDIT"]:
        raise InvalidArgument("amt_annuity", "cannot exceed the credit amount")
    for name, value in application.numeric_fields.items():
        field = f"numeric_fields[{name}]"
        if name not in table.by_name or table.column(name).kind not in ("int", "float"):
            raise InvalidArgument(field, "not a numeric Kaggle application field")
        if name in raw or name in ("SK_ID_CURR",):
            raise InvalidArgument(field, "given twice (it is a typed field)")
        raw[name] = _check_number(field, name, value)
    for name, value in application.category_fields.items():
        field = f"category_fields[{name}]"
        if name not in table.by_name or table.column(name).kind != "category":
            raise InvalidArgument(field, "not a categorical Kaggle application field")
        if name in raw:
            raise InvalidArgument(field, "given twice (it is a typed field)")
        category = _check_category(field, name, value)
        if category is not None:
            raw[name] = category
    if application.HasField("client_id"):
        if application.client_id <= 0:
            raise InvalidArgument("client_id", "must be a positive SK_ID_CURR")
        raw["SK_ID_CURR"] = application.client_id
    return raw
