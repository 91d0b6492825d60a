"""Typed tables -> one row per client (features.parquet) + the feature schema.

The output feeds training and, through the feature store, serving: the same rows, the same
columns, the same code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import polars as pl
import structlog
from rich.progress import Progress

from serving_core.application import application_catalog, application_features
from serving_core.catalog import FeatureInfo
from training.features.aggregates import TABLE_FEATURES

log = structlog.get_logger(__name__)
FEATURES_FILE = "features.parquet"
SCHEMA_FILE = "feature_schema.json"
SCHEMA_VERSION = 1
ENTITY = "SK_ID_CURR"


def _applications(tables_dir: Path) -> pl.LazyFrame:
    """Train and test applications stacked; test rows get a null TARGET and split='test'."""
    train = pl.scan_parquet(tables_dir / "application_train.parquet").with_columns(
        pl.col("TARGET").cast(pl.Float64), pl.lit("train").alias("split")
    )
    test = pl.scan_parquet(tables_dir / "application_test.parquet").with_columns(
        pl.lit(None, dtype=pl.Float64).alias("TARGET"), pl.lit("test").alias("split")
    )
    return pl.concat([train, test], how="diagonal")


def feature_schema(infos: list[FeatureInfo]) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "entity": ENTITY,
        "features": [info.to_json() for info in infos],
    }


def build_features(tables_dir: Path, out_dir: Path, *, progress: bool = True) -> Path:
    """Write ``features.parquet`` and ``feature_schema.json`` into ``out_dir``."""
    tables_dir, out_dir = Path(tables_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with Progress(disable=not progress) as bar:
        task = bar.add_task("features", total=len(TABLE_FEATURES) + 2)
        started = time.perf_counter()
        applications = _applications(tables_dir)
        base = application_features(applications.drop("TARGET", "split")).collect()
        labels = applications.select(ENTITY, "TARGET", "split").collect()
        frame = labels.join(base, on=ENTITY, how="left", maintain_order="left")
        infos = application_catalog()
        timings["application"] = time.perf_counter() - started
        bar.update(task, advance=1, description="application")
        for table, build in TABLE_FEATURES:
            bar.update(task, description=table)
            started = time.perf_counter()
            aggregates, table_infos = build(tables_dir)
            collected = aggregates.collect(engine="streaming")
            frame = frame.join(collected, on=ENTITY, how="left", maintain_order="left")
            infos.extend(table_infos)
            timings[table] = time.perf_counter() - started
            bar.update(task, advance=1)
        bar.update(task, description="writing")
        names = [info.name for info in infos]
        assert len(set(names)) == len(names), "duplicate feature names"
        frame = frame.select(ENTITY, "TARGET", "split", *names)
        staging = out_dir / f".{FEATURES_FILE}.tmp"
        frame.write_parquet(staging, compression="zstd")
        staging.replace(out_dir / FEATURES_FILE)
        (out_dir / SCHEMA_FILE).write_text(
            json.dumps(feature_schema(infos), indent=1, ensure_ascii=False) + "\n"
        )
        bar.update(task, advance=1, description="done")
    log.info(
        "features_built",
        clients=frame.height,
        features=len(names),
        seconds={k: round(v, 2) for k, v in timings.items()},
    )
    return out_dir / FEATURES_FILE


def load_feature_schema(features_dir: Path) -> dict[str, Any]:
    return json.loads((Path(features_dir) / SCHEMA_FILE).read_text())
