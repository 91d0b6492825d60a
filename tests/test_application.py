"""A partner's application -> raw Kaggle fields: training-consistent encoding of gaps."""

from __future__ import annotations

import math

import polars as pl
import pytest

from credit.v1 import common_pb2
from services.common.application import application_to_raw, unseen_categories
from services.common.errors import InvalidArgument
from serving_core.application import application_features
from serving_core.ranges import numeric_ranges
from serving_core.schema import DAYS_SENTINEL, kaggle_schema


def _application(**fields: object) -> common_pb2.Application:
    base = {
        "contract_type": "Cash loans",
        "amt_income_total": 120_000.0,
        "amt_credit": 500_000.0,
        "amt_annuity": 25_000.0,
        "days_birth": -20_000,
    }
    return common_pb2.Application(**{**base, **fields})  # type: ignore[arg-type]


def test_no_employment_date_is_encoded_as_kaggle_does():
    """Training never saw a missing DAYS_EMPLOYED: pensioners carry 365243, which the
    features turn into a flag. A partner leaving the field out must get the same flag."""
    raw = application_to_raw(_application())
    assert raw["DAYS_EMPLOYED"] == DAYS_SENTINEL
    features = application_features(pl.DataFrame([raw])).row(0, named=True)
    assert features["DAYS_EMPLOYED_ANOMALY"] == 1.0 and features["DAYS_EMPLOYED"] is None


def test_employment_date_is_kept():
    features = application_features(
        pl.DataFrame([application_to_raw(_application(days_employed=-1_000))])
    ).row(0, named=True)
    assert features["DAYS_EMPLOYED"] == -1_000 and features["DAYS_EMPLOYED_ANOMALY"] == 0.0
    assert features["EMPLOYED_AGE_RATIO"] == pytest.approx(1_000 / 20_000)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"amt_credit": 0.0}, "amt_credit"),
        ({"days_employed": 10}, "days_employed"),
        ({"name_income_type": "Astronaut"}, "name_income_type"),
        ({"amt_annuity": 600_000.0}, "amt_annuity"),
        ({"numeric_fields": {"NOT_A_FIELD": 1.0}}, "numeric_fields[NOT_A_FIELD]"),
        ({"category_fields": {"AMT_CREDIT": "x"}}, "category_fields[AMT_CREDIT]"),
    ],
)
def test_invalid_fields_are_named(fields: dict, field: str):
    with pytest.raises(InvalidArgument) as error:
        application_to_raw(_application(**fields))
    assert error.value.field == field


def test_xna_is_missing_and_every_kaggle_value_is_valid():
    """Kaggle's XNA means "not available": scored as a missing value, never refused; values
    of the full data set absent from the statistics' sample are valid too."""
    raw = application_to_raw(
        _application(
            organization_type="XNA",
            code_gender="XNA",
            name_income_type="Unemployed",
            category_fields={"NAME_FAMILY_STATUS": "Unknown"},
        )
    )
    assert "ORGANIZATION_TYPE" not in raw and "CODE_GENDER" not in raw
    assert raw["NAME_INCOME_TYPE"] == "Unemployed" and raw["NAME_FAMILY_STATUS"] == "Unknown"
    features = application_features(pl.DataFrame([raw])).row(0, named=True)
    assert features["ORGANIZATION_TYPE"] is None


def test_values_unseen_in_training_are_missing_and_flagged():
    schema = {
        "features": [
            {
                "name": "NAME_INCOME_TYPE",
                "dtype": "category",
                "categories": ["Pensioner", "Working"],
            },
            {"name": "AMT_CREDIT", "dtype": "float"},
        ]
    }
    features = {"NAME_INCOME_TYPE": "Student", "AMT_CREDIT": 1.0, "OTHER": "x"}
    cleaned, flagged = unseen_categories(features, schema)
    assert flagged == ["NAME_INCOME_TYPE=Student"]
    assert cleaned == {"NAME_INCOME_TYPE": None, "AMT_CREDIT": 1.0, "OTHER": "x"}
    assert unseen_categories({"NAME_INCOME_TYPE": "Working"}, schema)[1] == []


def test_numeric_ranges_come_from_the_data_and_are_bounded():
    ranges = numeric_ranges()
    numeric = [
        c.name
        for c in kaggle_schema()["application_test"].columns
        if c.kind in ("int", "float") and c.name != "SK_ID_CURR"
    ]
    assert set(ranges) == set(numeric)  # every numeric field has finite bounds
    assert all(math.isfinite(low) and math.isfinite(high) for low, high in ranges.values())
    low, high = ranges["AMT_CREDIT"]
    assert 1_000 < low <= 45_000 and 4_050_000 <= high < 1e8  # Kaggle: 45,000 to 4,050,000
    assert ranges["EXT_SOURCE_2"] == (0.0, 1.0)
    with pytest.raises(InvalidArgument, match="between"):
        application_to_raw(_application(amt_income_total=1e9))
    # Kaggle's "no employment date" code is a valid input, the same as leaving it out.
    raw = application_to_raw(_application(days_employed=DAYS_SENTINEL))
    assert raw == application_to_raw(_application())
