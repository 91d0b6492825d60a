"""The Spark feature pipeline (Spark local mode) against the polars one on the synthetic set.

Every feature of every client must agree: exactly for counts, flags and categories (and the
identifiers, labels and row order), within 1e-9 relative for the other floats, where the
engines sum in different orders. The feature schemas must be identical. Java comes from
Debian (``scripts/ensure-test-tools.sh`` installs openjdk-17-jre-headless).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import missing_service
from training.features.pipeline import FEATURES_FILE, SCHEMA_FILE, build_features
from training.loader import convert
from training.synthetic import generate

CLIENTS = 2_500
EXACT_UNITS = {"count", "flag", "category"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("java") is None:
        missing_service("no java: bash scripts/ensure-test-tools.sh installs it", module_level=True)
    pytest.importorskip("pyspark")
    from training.features.spark import build_features_spark, spark_session

    root = tmp_path_factory.mktemp("spark")
    generate(root / "raw", CLIENTS, seed=3, progress=False, chunk_clients=1_000)
    convert(root / "raw", root / "tables", progress=False)
    build_features(root / "tables", root / "polars", progress=False)
    spark = spark_session(master="local[2]", memory="1g")
    try:
        build_features_spark(root / "tables", root / "spark", spark=spark, keep_spark_output=True)
    finally:
        spark.stop()
    return root / "polars", root / "spark"


def test_same_schema_rows_and_types(built: tuple[Path, Path]) -> None:
    polars_dir, spark_dir = built
    assert json.loads((spark_dir / SCHEMA_FILE).read_text()) == json.loads(
        (polars_dir / SCHEMA_FILE).read_text()
    )
    ours = pl.read_parquet(polars_dir / FEATURES_FILE)
    theirs = pl.read_parquet(spark_dir / FEATURES_FILE)
    assert theirs.schema == ours.schema
    assert theirs.height == ours.height == CLIENTS
    for column in ("SK_ID_CURR", "TARGET", "split"):  # the same clients in the same order
        assert theirs[column].equals(ours[column]), column
    # The Spark dataset itself (what a Feast FileSource or a cluster job reads) is kept.
    assert (
        pl.scan_parquet(spark_dir / "features.spark" / "*.parquet")
        .select(pl.len())
        .collect()
        .item()
        == CLIENTS
    )


def test_every_feature_equal(built: tuple[Path, Path]) -> None:
    polars_dir, spark_dir = built
    ours = pl.read_parquet(polars_dir / FEATURES_FILE)
    theirs = pl.read_parquet(spark_dir / FEATURES_FILE)
    schema = json.loads((polars_dir / SCHEMA_FILE).read_text())
    differing: dict[str, str] = {}
    checked_floats = 0
    for feature in schema["features"]:
        name = feature["name"]
        a, b = ours[name], theirs[name]
        if feature["dtype"] == "category" or feature["unit"] in EXACT_UNITS:
            if not a.equals(b):  # nulls in the same places, values bit for bit
                differing[name] = f"{(~a.eq_missing(b)).sum()} values differ"
            continue
        if not a.is_null().equals(b.is_null()):
            differing[name] = "missing in different rows"
            continue
        x, y = a.drop_nulls().to_numpy(), b.drop_nulls().to_numpy()
        if not np.array_equal(np.isnan(x), np.isnan(y)):
            differing[name] = "NaN in different rows"
            continue
        finite = ~np.isnan(x)
        close = np.isclose(x[finite], y[finite], rtol=1e-9, atol=0.0)
        if not close.all():
            worst = np.max(np.abs(x[finite] - y[finite]) / np.abs(x[finite]))
            differing[name] = f"{(~close).sum()} values beyond 1e-9 (worst {worst:.1e})"
        checked_floats += int(finite.sum())
    assert not differing, differing
    assert checked_floats > CLIENTS * 50  # the comparison saw real values, not only nulls
