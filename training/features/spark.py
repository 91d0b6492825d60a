"""The feature pipeline on Apache Spark: the same features as the polars pipeline.

``credit features build --engine spark`` runs this module; polars (``pipeline.py``) stays the
default on one machine. Both read the same typed tables and write the same
``features.parquet`` (rows in the same order, the same columns and types) and the same
``feature_schema.json``: the catalogue entries are taken from the polars builders, and every
aggregate here is the Spark translation of the polars expression of the same name
(``tests/test_spark_features.py`` checks every value on the synthetic set).

The translations keep polars' semantics where Spark's differ:

* ``sum`` of no values is 0 in polars, null in Spark: ``coalesce(sum, 0)``;
* a filtered aggregate (``col.filter(where).mean()``) aggregates ``when(where, col)``: rows
  whose condition is false or null are left out in both;
* ``n_unique`` counts a null as one more value in polars, never in Spark;
* ``clip(lower_bound=0)`` keeps nulls (Spark's ``greatest`` would turn them into 0);
* the horizontal mean, min and max over the external scores skip nulls.

On a cluster the same code runs under ``spark-submit`` (docs/spark.md): the Spark output is
the Parquet dataset ``<out>/features.spark/`` (one row per client, with its row order);
on a local path it is then written as ``features.parquet`` like the polars pipeline's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import structlog

from serving_core.application import NOT_FEATURES, application_catalog
from serving_core.catalog import FeatureInfo
from serving_core.schema import (
    CATEGORY_MISSING,
    DAYS_SENTINEL,
    DAYS_SENTINEL_COLUMNS,
    kaggle_schema,
)
from training.features.aggregates import (
    LATE_STATUSES,
    RECENT_DAYS,
    RECENT_MONTHS,
    TABLE_FEATURES,
)
from training.features.pipeline import ENTITY, FEATURES_FILE, SCHEMA_FILE, feature_schema

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = structlog.get_logger(__name__)
SPARK_DIR = "features.spark"  # the Spark output: a Parquet dataset
ORDER = "_row_order"  # train rows, then test rows, each in file order
ENGINES = ("polars", "spark")


def spark_session(master: str | None = None, memory: str | None = None) -> SparkSession:
    """A Spark session: the one ``spark-submit`` made, or a local one (``local[*]``).

    ``SPARK_MASTER`` and ``SPARK_DRIVER_MEMORY`` override the local defaults. Shuffles use
    few partitions: Spark's default of 200 is made for clusters, and costs seconds of task
    overhead per group-by on small tables.
    """
    from pyspark.sql import SparkSession

    master = master or os.environ.get("SPARK_MASTER", "local[*]")
    memory = memory or os.environ.get("SPARK_DRIVER_MEMORY", "6g")
    builder = (
        SparkSession.builder.appName("credit-features")
        .master(master)
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", os.environ.get("SPARK_SHUFFLE_PARTITIONS", "8"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.parquet.compression.codec", "zstd")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --- expressions ---------------------------------------------------------------------------


def _f() -> Any:
    from pyspark.sql import functions

    return functions


def safe_divide(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, missing when the denominator is 0 or missing."""
    return _f().when(denominator != 0, numerator / denominator)


def clip_low(value: Column) -> Column:
    """``clip(lower_bound=0)``: negative values become 0, nulls stay null."""
    return _f().when(value < 0, _f().lit(0.0)).otherwise(value)


class Aggregates:
    """Named Spark aggregates of one table, in the order of the polars catalogue."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.columns: dict[str, Column] = {}

    def add(self, name: str, column: Column, subset: str = "") -> None:
        full = f"{self.prefix}_{name}" + (f"_{subset.upper()}" if subset else "")
        self.columns[full] = column.cast("double").alias(full)

    def stats(
        self, column: str, hows: tuple[str, ...], subset: str = "", where: Column | None = None
    ) -> None:
        f = _f()
        values = f.col(column) if where is None else f.when(where, f.col(column))
        for how in hows:
            self.add(f"{column}_{how.upper()}", _aggregate(how, values), subset)

    def count(self, subset: str = "", where: Column | None = None) -> None:
        f = _f()
        self.add("COUNT", f.count(f.lit(1)) if where is None else f.count(f.when(where, 1)), subset)


def _aggregate(how: str, values: Column) -> Column:
    f = _f()
    if how == "sum":
        return f.coalesce(f.sum(values), f.lit(0))
    if how == "mean":
        return f.avg(values)
    if how == "min":
        return f.min(values)
    if how == "max":
        return f.max(values)
    raise ValueError(f"no Spark aggregate for {how!r}")


def _share(condition: Column) -> Column:
    """polars' ``condition.mean()``: the share of true among non-null conditions."""
    return _f().avg(condition.cast("double"))


def _true_count(condition: Column) -> Column:
    """polars' ``condition.sum()``: how many rows have it true (0 when none)."""
    return _f().count(_f().when(condition, 1))


def mask_sentinels(frame: DataFrame, table: str) -> DataFrame:
    """365243 day offsets and the XNA category become null (``serving_core.sentinels``)."""
    f = _f()
    present = set(frame.columns)
    days = [c for c in DAYS_SENTINEL_COLUMNS.get(table, ()) if c in present]
    categories = [
        c.name for c in kaggle_schema()[table].columns if c.kind == "category" and c.name in present
    ]
    replaced = {c: f.when(f.col(c) == DAYS_SENTINEL, None).otherwise(f.col(c)) for c in days}
    replaced |= {
        c: f.when(f.col(c) == CATEGORY_MISSING, None).otherwise(f.col(c)) for c in categories
    }
    return frame.withColumns(replaced) if replaced else frame


def _scan(spark: SparkSession, tables_dir: str, table: str, *, masked: bool = True) -> DataFrame:
    frame = spark.read.parquet(f"{tables_dir}/{table}.parquet")
    return mask_sentinels(frame, table) if masked else frame


# --- per table -------------------------------------------------------------------------------


def bureau(spark: SparkSession, tables_dir: str) -> DataFrame:
    f = _f()
    frame = _scan(spark, tables_dir, "bureau").withColumn(
        "DEBT_RATIO", safe_divide(f.col("AMT_CREDIT_SUM_DEBT"), f.col("AMT_CREDIT_SUM"))
    )
    active = f.col("CREDIT_ACTIVE") == "Active"
    closed = f.col("CREDIT_ACTIVE") == "Closed"
    recent = f.col("DAYS_CREDIT") >= -RECENT_DAYS
    a = Aggregates("BUREAU")
    a.count()
    a.count("active", active)
    a.count("closed", closed)
    a.count("recent", recent)
    a.stats("DAYS_CREDIT", ("mean", "min", "max"))
    a.stats("DAYS_CREDIT_ENDDATE", ("mean", "max"), "active", active)
    a.stats("CREDIT_DAY_OVERDUE", ("max", "mean"))
    a.stats("AMT_CREDIT_MAX_OVERDUE", ("max",))
    a.stats("CNT_CREDIT_PROLONG", ("sum",))
    a.stats("AMT_CREDIT_SUM", ("sum", "mean"))
    a.stats("AMT_CREDIT_SUM", ("sum",), "active", active)
    a.stats("AMT_CREDIT_SUM", ("sum",), "closed", closed)
    a.stats("AMT_CREDIT_SUM_DEBT", ("sum", "mean"), "active", active)
    a.stats("AMT_CREDIT_SUM_OVERDUE", ("sum",), "active", active)
    a.stats("DEBT_RATIO", ("mean", "max"), "active", active)
    a.stats("AMT_ANNUITY", ("sum",), "active", active)
    a.stats("AMT_CREDIT_SUM", ("sum",), "recent", recent)
    a.add("CREDIT_CARD_SHARE", _share(f.col("CREDIT_TYPE") == "Credit card"))
    a.add("MICROLOAN_COUNT", _true_count(f.col("CREDIT_TYPE") == "Microloan"))
    return _grouped(frame, a, "bureau")


def bureau_balance(spark: SparkSession, tables_dir: str) -> DataFrame:
    f = _f()
    late = f.col("STATUS").isin(*LATE_STATUSES)
    balance = spark.read.parquet(f"{tables_dir}/bureau_balance.parquet").select(
        "SK_ID_BUREAU",
        late.cast("double").alias("LATE"),
        f.when(late, f.col("STATUS").cast("long")).otherwise(f.lit(0)).alias("STATUS_LEVEL"),
        (f.col("MONTHS_BALANCE") >= -RECENT_MONTHS).alias("RECENT"),
    )
    per_credit = balance.groupBy("SK_ID_BUREAU").agg(
        f.count(f.lit(1)).alias("MONTHS"),
        f.avg("LATE").alias("LATE_SHARE"),
        f.avg(f.when(f.col("RECENT"), f.col("LATE"))).alias("LATE_SHARE_RECENT"),
        f.max("STATUS_LEVEL").alias("WORST_STATUS"),
    )
    links = spark.read.parquet(f"{tables_dir}/bureau.parquet").select(ENTITY, "SK_ID_BUREAU")
    joined = per_credit.join(links, on="SK_ID_BUREAU", how="inner")
    a = Aggregates("BB")
    a.stats("MONTHS", ("mean", "sum"))
    a.stats("LATE_SHARE", ("mean", "max"))
    a.add("LATE_SHARE_MEAN", f.avg("LATE_SHARE_RECENT"), "recent")
    a.stats("WORST_STATUS", ("max", "mean"))
    return _grouped(joined, a, "bureau_balance")


def previous_application(spark: SparkSession, tables_dir: str) -> DataFrame:
    f = _f()
    frame = _scan(spark, tables_dir, "previous_application").withColumn(
        "APPLICATION_CREDIT", safe_divide(f.col("AMT_APPLICATION"), f.col("AMT_CREDIT"))
    )
    approved = f.col("NAME_CONTRACT_STATUS") == "Approved"
    refused = f.col("NAME_CONTRACT_STATUS") == "Refused"
    recent = f.col("DAYS_DECISION") >= -RECENT_DAYS
    a = Aggregates("PREV")
    a.count()
    a.count("approved", approved)
    a.count("refused", refused)
    a.count("recent", recent)
    a.add("REFUSED_SHARE", _share(refused))
    a.add("REFUSED_SHARE", f.avg(f.when(recent, refused.cast("double"))), "recent")
    for subset, where in (("approved", approved), ("refused", refused)):
        a.stats("AMT_CREDIT", ("mean", "max"), subset, where)
        a.stats("APPLICATION_CREDIT", ("mean",), subset, where)
        a.stats("DAYS_DECISION", ("max",), subset, where)
    a.stats("AMT_ANNUITY", ("mean",), "approved", approved)
    a.stats("CNT_PAYMENT", ("mean",), "approved", approved)
    a.stats("RATE_DOWN_PAYMENT", ("mean",))
    a.stats("DAYS_LAST_DUE_1ST_VERSION", ("max",), "approved", approved)
    a.add("INSURED_SHARE", f.avg("NFLAG_INSURED_ON_APPROVAL"))
    return _grouped(frame, a, "previous_application")


def pos_cash(spark: SparkSession, tables_dir: str) -> DataFrame:
    f = _f()
    frame = _scan(spark, tables_dir, "POS_CASH_balance")
    recent = f.col("MONTHS_BALANCE") >= -RECENT_MONTHS
    a = Aggregates("POS")
    a.count()
    a.stats("SK_DPD", ("max", "mean"))
    a.stats("SK_DPD_DEF", ("max", "mean"))
    a.stats("SK_DPD", ("mean",), "recent", recent)
    a.add("LATE_SHARE", _share(f.col("SK_DPD") > 0))
    a.stats("CNT_INSTALMENT_FUTURE", ("mean",), "recent", recent)
    a.add("COMPLETED_COUNT", _true_count(f.col("NAME_CONTRACT_STATUS") == "Completed"))
    # polars' n_unique counts a missing loan id as one more loan.
    loans = f.countDistinct("SK_ID_PREV") + f.max(f.col("SK_ID_PREV").isNull().cast("int"))
    a.add("LOANS_COUNT", loans)
    return _grouped(frame, a, "POS_CASH_balance")


def installments(spark: SparkSession, tables_dir: str) -> DataFrame:
    f = _f()
    paid_late = f.col("DAYS_ENTRY_PAYMENT") - f.col("DAYS_INSTALMENT")
    frame = _scan(spark, tables_dir, "installments_payments").withColumns(
        {
            "PAID_SHARE": safe_divide(f.col("AMT_PAYMENT"), f.col("AMT_INSTALMENT")),
            "PAID_DIFF": f.col("AMT_INSTALMENT") - f.col("AMT_PAYMENT"),
            "DPD": clip_low(paid_late),
            "DBD": clip_low(-paid_late),
        }
    )
    recent = f.col("DAYS_INSTALMENT") >= -RECENT_DAYS
    a = Aggregates("INST")
    a.count()
    a.stats("PAID_SHARE", ("mean", "min"))
    a.stats("PAID_DIFF", ("mean", "max", "sum"))
    a.stats("DPD", ("mean", "max"))
    a.stats("DBD", ("mean",))
    a.add("LATE_SHARE", _share(f.col("DPD") > 0))
    a.stats("DPD", ("mean",), "recent", recent)
    a.stats("PAID_SHARE", ("mean",), "recent", recent)
    return _grouped(frame, a, "installments_payments")


def credit_card(spark: SparkSession, tables_dir: str) -> DataFrame:
    f = _f()
    frame = _scan(spark, tables_dir, "credit_card_balance").withColumns(
        {
            "USE": safe_divide(f.col("AMT_BALANCE"), f.col("AMT_CREDIT_LIMIT_ACTUAL")),
            "PAID_MIN": safe_divide(f.col("AMT_PAYMENT_CURRENT"), f.col("AMT_INST_MIN_REGULARITY")),
        }
    )
    recent = f.col("MONTHS_BALANCE") >= -RECENT_MONTHS
    a = Aggregates("CC")
    a.count()
    a.stats("AMT_BALANCE", ("mean", "max"))
    a.stats("USE", ("mean", "max"))
    a.stats("USE", ("mean",), "recent", recent)
    a.stats("AMT_DRAWINGS_CURRENT", ("mean",))
    a.stats("CNT_DRAWINGS_CURRENT", ("mean",))
    a.stats("PAID_MIN", ("mean",))
    a.stats("SK_DPD", ("max", "mean"))
    return _grouped(frame, a, "credit_card_balance")


SPARK_TABLES: dict[str, Callable[[SparkSession, str], DataFrame]] = {
    "bureau": bureau,
    "bureau_balance": bureau_balance,
    "previous_application": previous_application,
    "POS_CASH_balance": pos_cash,
    "installments_payments": installments,
    "credit_card_balance": credit_card,
}


def _grouped(frame: DataFrame, a: Aggregates, table: str) -> DataFrame:
    return frame.groupBy(ENTITY).agg(*a.columns.values())


# --- applications -----------------------------------------------------------------------------


def _typed_applications(spark: SparkSession, tables_dir: str) -> DataFrame:
    """Train then test applications in file order, every raw field with its schema type."""
    f = _f()
    parts = []
    for rank, (table, split) in enumerate(
        (("application_train", "train"), ("application_test", "test"))
    ):
        raw = spark.read.parquet(f"{tables_dir}/{table}.parquet")
        present = set(raw.columns)
        columns = []
        for column in kaggle_schema()["application_test"].columns:
            if column.name in NOT_FEATURES:
                continue
            dtype = "string" if column.kind == "category" else "double"
            value = f.col(column.name) if column.name in present else f.lit(None)
            columns.append(value.cast(dtype).alias(column.name))
        target = f.col("TARGET").cast("double") if "TARGET" in present else f.lit(None)
        # One file's rows keep their order in monotonically_increasing_id (its partitions
        # are the file's consecutive splits); the rank puts the train file first.
        order = f.lit(rank).cast("long") * f.lit(1 << 40) + f.monotonically_increasing_id()
        parts.append(
            raw.select(
                f.col(ENTITY),
                target.cast("double").alias("TARGET"),
                f.lit(split).alias("split"),
                *columns,
                order.alias(ORDER),
            )
        )
    return parts[0].unionByName(parts[1])


def _ext_sources(names: tuple[str, ...]) -> dict[str, Column]:
    f = _f()
    present = [f.col(c).isNotNull().cast("double") for c in names]
    count = present[0] + present[1] + present[2]
    total = f.coalesce(f.col(names[0]), f.lit(0.0))
    squares = f.coalesce(f.col(names[0]) * f.col(names[0]), f.lit(0.0))
    for name in names[1:]:
        total = total + f.coalesce(f.col(name), f.lit(0.0))
        squares = squares + f.coalesce(f.col(name) * f.col(name), f.lit(0.0))
    mean = f.when(count > 0, total / count)
    mean_sq = f.when(count > 0, squares / count)
    return {
        "EXT_SOURCE_MEAN": mean,
        "EXT_SOURCE_MIN": f.least(*[f.col(c) for c in names]),
        "EXT_SOURCE_MAX": f.greatest(*[f.col(c) for c in names]),
        "EXT_SOURCE_STD": f.sqrt(clip_low(mean_sq - mean * mean)),
        "EXT_SOURCE_PROD": f.col(names[0]) * f.col(names[1]) * f.col(names[2]),
    }


def application_features(spark: SparkSession, tables_dir: str) -> DataFrame:
    """``serving_core.application.application_features`` in Spark, with labels and order."""
    f = _f()
    typed = _typed_applications(spark, tables_dir)
    flagged = typed.withColumn(
        "DAYS_EMPLOYED_ANOMALY",
        f.when(f.col("DAYS_EMPLOYED").isNull(), None).otherwise(
            (f.col("DAYS_EMPLOYED") == DAYS_SENTINEL).cast("double")
        ),
    )
    masked = mask_sentinels(flagged, "application_test")
    col = f.col
    derived = {
        "CREDIT_TERM_MONTHS": safe_divide(col("AMT_CREDIT"), col("AMT_ANNUITY")),
        "ANNUITY_INCOME_RATIO": safe_divide(col("AMT_ANNUITY"), col("AMT_INCOME_TOTAL")),
        "CREDIT_INCOME_RATIO": safe_divide(col("AMT_CREDIT"), col("AMT_INCOME_TOTAL")),
        "GOODS_CREDIT_RATIO": safe_divide(col("AMT_GOODS_PRICE"), col("AMT_CREDIT")),
        "EMPLOYED_AGE_RATIO": safe_divide(col("DAYS_EMPLOYED"), col("DAYS_BIRTH")),
        "INCOME_PER_PERSON": safe_divide(col("AMT_INCOME_TOTAL"), col("CNT_FAM_MEMBERS")),
        **_ext_sources(("EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3")),
    }
    return masked.withColumns({k: v.cast("double") for k, v in derived.items()})


# --- the pipeline -----------------------------------------------------------------------------


def _catalogue(tables_dir: Path) -> tuple[list[FeatureInfo], dict[str, list[str]]]:
    """The polars pipeline's catalogue (entries in output order) and each table's names."""
    infos = application_catalog()
    names: dict[str, list[str]] = {}
    for table, build in TABLE_FEATURES:
        _, table_infos = build(tables_dir)  # lazy scans only: nothing is read
        infos.extend(table_infos)
        names[table] = [info.name for info in table_infos]
    return infos, names


def spark_features(spark: SparkSession, tables_dir: str, names: dict[str, list[str]]) -> DataFrame:
    """One row per client: labels, application features, every table's aggregates."""
    frame = application_features(spark, tables_dir)
    for table, columns in names.items():
        aggregates = SPARK_TABLES[table](spark, tables_dir)
        missing = set(columns) ^ (set(aggregates.columns) - {ENTITY})
        if missing:
            raise RuntimeError(f"{table}: Spark and polars features differ: {sorted(missing)}")
        frame = frame.join(aggregates.select(ENTITY, *columns), on=ENTITY, how="left")
    return frame


def _finish_local(spark_dir: Path, out_dir: Path, columns: list[str], tables_dir: Path) -> int:
    """The Spark dataset -> ``features.parquet`` in the polars pipeline's row order and types."""
    entity = pl.read_parquet_schema(tables_dir / "application_train.parquet")[ENTITY]
    frame = (
        pl.scan_parquet(spark_dir / "*.parquet")
        .sort(ORDER)
        .select(
            pl.col(ENTITY).cast(entity),
            pl.col("TARGET").cast(pl.Float64),
            pl.col("split").cast(pl.String),
            *columns,
        )
        .collect()
    )
    staging = out_dir / f".{FEATURES_FILE}.tmp"
    frame.write_parquet(staging, compression="zstd")
    staging.replace(out_dir / FEATURES_FILE)
    return frame.height


def build_features_spark(
    tables_dir: Path | str,
    out_dir: Path | str,
    *,
    spark: SparkSession | None = None,
    keep_spark_output: bool = False,
) -> Path:
    """Write ``features.parquet`` and ``feature_schema.json`` into ``out_dir`` with Spark.

    The Spark dataset goes to ``<out_dir>/features.spark/`` first; it is removed once
    ``features.parquet`` is written unless ``keep_spark_output`` (a Feast FileSource or
    another Spark job can read it as it is).
    """
    tables_dir, out_dir = Path(tables_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    spark = spark or spark_session()
    infos, names = _catalogue(tables_dir)
    feature_names = [info.name for info in infos]
    assert len(set(feature_names)) == len(feature_names), "duplicate feature names"
    frame = spark_features(spark, str(tables_dir.resolve()), names)
    spark_dir = out_dir / SPARK_DIR
    frame.select(ENTITY, "TARGET", "split", *feature_names, ORDER).write.mode("overwrite").parquet(
        str(spark_dir.resolve())
    )
    computed = time.perf_counter()
    clients = _finish_local(spark_dir, out_dir, feature_names, tables_dir)
    if not keep_spark_output:
        shutil.rmtree(spark_dir)
    (out_dir / SCHEMA_FILE).write_text(
        json.dumps(feature_schema(infos), indent=1, ensure_ascii=False) + "\n"
    )
    log.info(
        "features_built",
        engine="spark",
        master=spark.sparkContext.master,
        clients=clients,
        features=len(feature_names),
        spark_seconds=round(computed - started, 2),
        seconds=round(time.perf_counter() - started, 2),
    )
    return out_dir / FEATURES_FILE


def main(argv: list[str] | None = None) -> None:
    """``spark-submit training/features/spark.py TABLES OUT`` (docs/spark.md)."""
    import sys

    tables, out = (argv if argv is not None else sys.argv[1:])[:2]
    spark = spark_session()
    try:
        build_features_spark(tables, out, spark=spark, keep_spark_output=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
