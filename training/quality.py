"""Data-quality summary of the typed tables: sizes, missing values, sentinels, key linkage.

Computed lazily with polars on the Parquet files, one key column at a time, so the summary
of the full Kaggle data (58 M child rows) stays within a few hundred MB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table as RichTable

from serving_core.schema import (
    APPLICATION_TABLES,
    CATEGORY_MISSING,
    DAYS_SENTINEL,
    DAYS_SENTINEL_COLUMNS,
    LINKS,
    TABLE_NAMES,
    kaggle_schema,
)

SUMMARY_FILE = "quality.json"
# Child tables whose presence per client tells whether the client has a credit history.
HISTORY_TABLES = (
    "bureau",
    "previous_application",
    "POS_CASH_balance",
    "installments_payments",
    "credit_card_balance",
)


def _scan(tables_dir: Path, table: str) -> pl.LazyFrame:
    return pl.scan_parquet(tables_dir / f"{table}.parquet")


def _table_stats(tables_dir: Path, table: str) -> dict[str, Any]:
    frame = _scan(tables_dir, table)
    columns = frame.collect_schema().names()
    counts = frame.select(
        pl.len().alias("__rows__"), *[pl.col(c).null_count() for c in columns]
    ).collect()
    rows = int(counts["__rows__"][0])
    missing = {c: int(counts[c][0]) for c in columns}
    cells = rows * len(columns)
    top_missing = sorted(
        ((c, n / rows) for c, n in missing.items() if n), key=lambda item: -item[1]
    )[:5]
    sentinels: dict[str, int] = {}
    schema = kaggle_schema()[table]
    for column in DAYS_SENTINEL_COLUMNS.get(table, ()):
        sentinels[f"{column}={DAYS_SENTINEL}"] = int(
            frame.select((pl.col(column) == DAYS_SENTINEL).sum()).collect().item()
        )
    category_columns = [c.name for c in schema.columns if c.kind == "category"]
    if category_columns:
        xna = frame.select(
            [(pl.col(c) == CATEGORY_MISSING).sum().alias(c) for c in category_columns]
        ).collect()
        for column in category_columns:
            if xna[column][0]:
                sentinels[f"{column}={CATEGORY_MISSING}"] = int(xna[column][0])
    return {
        "rows": rows,
        "columns": len(columns),
        "missing_share": round(sum(missing.values()) / cells, 4) if cells else 0.0,
        "most_missing": {c: round(share, 4) for c, share in top_missing},
        "sentinels": sentinels,
    }


def _keys(tables_dir: Path, tables: tuple[str, ...], column: str) -> pl.LazyFrame:
    return pl.concat([_scan(tables_dir, t).select(column) for t in tables]).unique()


def _linkage(tables_dir: Path) -> dict[str, Any]:
    orphans = {}
    for link in LINKS:
        child = _scan(tables_dir, link.child).select(link.column).drop_nulls()
        parents = _keys(tables_dir, link.parents, link.column)
        orphan_rows = child.join(parents, on=link.column, how="anti").select(pl.len())
        parent_name = "application" if link.parents == APPLICATION_TABLES else link.parent
        orphans[f"{link.child}.{link.column} -> {parent_name}"] = int(orphan_rows.collect().item())
    without_history = {}
    for application in APPLICATION_TABLES:
        clients = _scan(tables_dir, application).select("SK_ID_CURR")
        total = clients.select(pl.len()).collect().item()
        shares = {}
        for table in HISTORY_TABLES:
            seen = _scan(tables_dir, table).select("SK_ID_CURR").unique()
            absent = clients.join(seen, on="SK_ID_CURR", how="anti").select(pl.len())
            shares[table] = round(absent.collect().item() / total, 4) if total else 0.0
        any_history = pl.concat(
            [_scan(tables_dir, t).select("SK_ID_CURR") for t in HISTORY_TABLES]
        ).unique()
        none_at_all = clients.join(any_history, on="SK_ID_CURR", how="anti").select(pl.len())
        shares["any"] = round(none_at_all.collect().item() / total, 4) if total else 0.0
        without_history[application] = shares
    return {"orphan_rows": orphans, "clients_without_rows": without_history}


def summarize(tables_dir: Path) -> dict[str, Any]:
    """The summary as plain JSON-able data (also written to ``tables_dir/quality.json``)."""
    tables_dir = Path(tables_dir)
    stats = {table: _table_stats(tables_dir, table) for table in TABLE_NAMES}
    target = _scan(tables_dir, "application_train").select(pl.col("TARGET").mean()).collect()
    summary = {
        "tables": stats,
        "target_rate": round(float(target.item()), 4),
        **_linkage(tables_dir),
    }
    (tables_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=120)
    sizes = RichTable(title="Home Credit tables")
    for header in ("table", "rows", "columns", "missing cells", "most missing column"):
        sizes.add_column(header)
    sentinels = RichTable(title="Kaggle sentinels (kept as found, masked by the features)")
    for header in ("table", "value", "rows"):
        sentinels.add_column(header)
    for name, stats in summary["tables"].items():
        most = next(iter(stats["most_missing"].items()), None)
        sizes.add_row(
            name,
            f"{stats['rows']:,}",
            str(stats["columns"]),
            f"{stats['missing_share']:.1%}",
            f"{most[0]} ({most[1]:.0%})" if most else "",
        )
        for value, count in stats["sentinels"].items():
            sentinels.add_row(name, value, f"{count:,}")
    console.print(sizes)
    console.print(sentinels)
    links = RichTable(title="Key linkage")
    links.add_column("link")
    links.add_column("orphan rows")
    for name, count in summary["orphan_rows"].items():
        links.add_row(name, f"{count:,}")
    console.print(links)
    history = RichTable(title="Applications without rows in each table")
    history.add_column("application")
    tables = list(next(iter(summary["clients_without_rows"].values())))
    for table in tables:
        history.add_column(table)
    for application, shares in summary["clients_without_rows"].items():
        history.add_row(application, *(f"{shares[t]:.1%}" for t in tables))
    console.print(history)
    console.print(f"Default rate in application_train: {summary['target_rate']:.2%}")
