"""Feast objects (entity, views, on-demand view) generated from the feature schema.

The feature list is whatever ``build_features`` wrote, so the views are built from
``feature_schema.json`` rather than spelled out by hand: adding a feature to the pipeline
adds it to the store on the next ``apply``.

Two feature views, because Feast reads each view separately (Redis: one HMGET per view and
client; SQLite: one query per view) and the two halves change at different rhythms:

- ``client_application``: the client's latest application (raw fields and ratios). It only
  changes when the client applies again, which is scored through the on-demand view anyway,
  so a long TTL (365 days).
- ``client_history``: aggregates of bureau, previous loans, instalments, cards. These move
  every month; the CronJob re-materialises weekly, so a 30-day TTL tolerates three missed
  runs before the reader refuses to score on stale history.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
from feast import Entity, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Float64, Int64, String

from serving_core.application import application_catalog
from serving_core.schema import kaggle_schema

ENTITY_NAME = "client"
JOIN_KEY = "SK_ID_CURR"
APPLICATION_VIEW = "client_application"
HISTORY_VIEW = "client_history"
ON_DEMAND_VIEW = "application_on_demand"
REQUEST_SOURCE = "application_request"
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created"
OFFLINE_FILE = "client_features.parquet"
TTLS = {APPLICATION_VIEW: timedelta(days=365), HISTORY_VIEW: timedelta(days=30)}

client = Entity(
    name=ENTITY_NAME,
    join_keys=[JOIN_KEY],
    value_type=ValueType.INT64,
    description="A Home Credit client (SK_ID_CURR).",
)


def _field(spec: dict[str, Any]) -> Field:
    return Field(name=spec["name"], dtype=String if spec["dtype"] == "category" else Float64)


def view_of(spec: dict[str, Any]) -> str:
    return APPLICATION_VIEW if spec["source"] == "application" else HISTORY_VIEW


def request_fields() -> list[Field]:
    """Raw Kaggle application fields a partner may post (all optional at read time)."""
    return [
        Field(name=c.name, dtype=String if c.kind == "category" else Float64)
        for c in kaggle_schema()["application_test"].columns
        if c.name not in (JOIN_KEY, "TARGET")
    ]


def application_output_fields() -> list[Field]:
    return [
        Field(name=info.name, dtype=String if info.dtype == "category" else Float64)
        for info in application_catalog()
    ]


def _application_udf(inputs: pd.DataFrame) -> pd.DataFrame:
    # The training pipeline's own function, so a posted application gets exactly the
    # features the model was trained on. Feast rebuilds the UDF from its source text without
    # this module's globals, hence the imports inside. Polars reads NaN as missing, as the
    # pipeline does with nulls; unknown columns are ignored by application_features.
    import polars as pl

    from serving_core.application import application_features

    return application_features(pl.from_pandas(inputs, nan_to_null=True)).to_pandas()


@cache
def application_on_demand() -> OnDemandFeatureView:
    # Built once per process: Feast captures the UDF's source with dill.source, which fails
    # on a second inspection once Feast has re-exec'd the UDF text from the registry.
    request = RequestSource(name=REQUEST_SOURCE, schema=request_fields())
    return on_demand_feature_view(
        name=ON_DEMAND_VIEW,
        sources=[request],
        schema=application_output_fields(),
        mode="pandas",
        description="Application features of a new application, computed at request time.",
    )(_application_udf)


def definitions(schema: dict[str, Any], offline_path: Path) -> list[Any]:
    """Every Feast object of the repo, for ``FeatureStore.apply`` and the ``feast`` CLI."""
    source = FileSource(
        name="client_features",
        path=str(Path(offline_path).resolve()),
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description="features.parquet of the feature pipeline, stamped with its build time.",
    )
    fields: dict[str, list[Field]] = {APPLICATION_VIEW: [], HISTORY_VIEW: []}
    for spec in schema["features"]:
        fields[view_of(spec)].append(_field(spec))
    views = [
        FeatureView(
            name=name,
            entities=[client],
            schema=[Field(name=JOIN_KEY, dtype=Int64), *fields[name]],
            source=source,
            ttl=TTLS[name],
            online=True,
            tags={"features": str(len(fields[name]))},
        )
        for name in (APPLICATION_VIEW, HISTORY_VIEW)
    ]
    return [client, *views, application_on_demand()]


def offline_frame(features: pl.DataFrame, event_time: Any) -> pl.DataFrame:
    """features.parquet + Feast's timestamp columns (both the build time)."""
    stamp = pl.lit(event_time).cast(pl.Datetime("us", "UTC"))
    return features.with_columns(stamp.alias(EVENT_TIMESTAMP), stamp.alias(CREATED_TIMESTAMP)).drop(
        "TARGET", "split", strict=False
    )
