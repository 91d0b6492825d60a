"""Decision-log retention: old decisions move from the log's table into Parquet archives.

The table the gateway writes grows ~10 KB per decision (the feature vector is most of it),
while the gateway and the drift job read only recent decisions. ``archive_decisions`` moves
every decision older than a cutoff into zstd Parquet files, a batch per file, and deletes
it from the table; the gateway's audit endpoint still finds it there
(``GATEWAY_DECISION_ARCHIVE_DIR``), so an archived decision stays retrievable by its id.

Nothing is lost on a crash: a batch is deleted only once its file is durable (written to a
temporary name, fsynced, renamed, its folder fsynced) and read back with exactly the
batch's ids. Batches are taken oldest id first, so a crash between the two lets the next
run take the same rows again and write the same file name. (Replicas whose clocks disagree
can make a later run's batches differ: a decision may then sit in two files, never in
none; readers here keep one.)

Past the retention period, ``purge_archives`` deletes whole files: those whose newest
decision is older than its cutoff (a file holding any newer decision is kept whole).

A file is named ``decisions_<first id>_<last id>.parquet``: ids are UUIDv7 strings of one
width, so a lookup reads only the files whose id range holds the id. ``features`` is kept
as the log's own JSON text, byte for byte.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    String,
    Text,
    cast,
    delete,
    func,
    select,
)
from sqlalchemy.engine import Engine

from services.gateway.decisions import Decision, DecisionRow, as_utc

DEFAULT_BATCH = 5_000
# Row groups of 500 sorted ids: a lookup reads the one whose id range (min/max statistics)
# holds the id, not the whole file.
ROW_GROUP = 500
PREFIX = "decisions_"
_TABLE = DecisionRow.__table__
# The archive's columns are the decision table's (decisions.DecisionRow, the one definition
# of a logged decision), with the JSON features kept as the log's own JSON text.
_ARROW_TYPES: dict[type, pa.DataType] = {
    String: pa.string(),
    DateTime: pa.timestamp("us", tz="UTC"),
    BigInteger: pa.int64(),
    Double: pa.float64(),
    Boolean: pa.bool_(),
    JSON: pa.string(),
}
SCHEMA = pa.schema([(column.name, _ARROW_TYPES[type(column.type)]) for column in _TABLE.columns])
_COLUMNS = [
    cast(column, Text).label(column.name) if column.name == "features" else column
    for column in _TABLE.columns
]


@dataclass(frozen=True)
class ArchiveReport:
    """Decisions moved (archive) or deleted (purge), and the files written or removed."""

    cutoff: datetime
    decisions: int
    files: list[Path]


def archive_decisions(
    engine: Engine,
    archive_dir: Path,
    cutoff: datetime,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> ArchiveReport:
    """Moves every decision created before ``cutoff`` into ``archive_dir``; see the module
    docstring. ``on_batch`` gets each archived batch's size (progress)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    archive_dir.mkdir(parents=True, exist_ok=True)
    moved, files = 0, []
    for rows in _batches(engine, cutoff, batch_size):
        ids = [row["decision_id"] for row in rows]
        path = _write_durably(archive_dir, rows)
        with engine.begin() as connection:
            deleted = connection.execute(
                delete(DecisionRow).where(DecisionRow.decision_id.in_(ids))
            ).rowcount
            if deleted != len(ids):  # rolled back: the table and the file both keep them
                raise RuntimeError(f"deleted {deleted} of {len(ids)} archived decisions")
        moved += len(ids)
        files.append(path)
        if on_batch is not None:
            on_batch(len(ids))
    return ArchiveReport(cutoff=cutoff, decisions=moved, files=files)


def purge_archives(archive_dir: Path, cutoff: datetime) -> ArchiveReport:
    """Deletes the archive files whose newest decision was created before ``cutoff`` (the
    end of the retention period); see the module docstring."""
    deleted, files = 0, []
    for path in sorted(archive_dir.glob(f"{PREFIX}*.parquet")):
        created = pq.read_table(path, columns=["created_at"]).column(0)
        newest = max(created.to_pylist())
        if newest < cutoff:
            deleted += len(created)
            path.unlink()
            files.append(path)
    if files:
        _fsync_directory(archive_dir)
    return ArchiveReport(cutoff=cutoff, decisions=deleted, files=files)


def archive_metrics(
    report: ArchiveReport, finished: datetime, purged: ArchiveReport | None = None
) -> CollectorRegistry:
    """The run's results for Prometheus (pushed by the CronJob; alert
    CreditDecisionArchiveMissing when no run has succeeded for over a week)."""
    registry = CollectorRegistry()
    Gauge(
        "credit_decision_archive_last_success_timestamp_seconds",
        "When the decision-archive job last finished without error.",
        registry=registry,
    ).set(finished.timestamp())
    Gauge(
        "credit_decision_archive_moved",
        "Decisions the last decision-archive run moved into Parquet.",
        registry=registry,
    ).set(report.decisions)
    Gauge(
        "credit_decision_archive_cutoff_timestamp_seconds",
        "Decisions created before this time are archived (last run).",
        registry=registry,
    ).set(report.cutoff.timestamp())
    Gauge(
        "credit_decision_archive_purged",
        "Archived decisions the last run deleted, past the retention period.",
        registry=registry,
    ).set(purged.decisions if purged else 0)
    return registry


def count_older(engine: Engine, cutoff: datetime) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(_TABLE).where(_TABLE.c.created_at < cutoff)
        return int(connection.execute(query).scalar_one())


def find_archived(archive_dir: Path, decision_id: str) -> Decision | None:
    """The archived decision with this id, or None (no archive, or not in it)."""
    if not archive_dir.is_dir():
        return None
    for path in sorted(archive_dir.glob(f"{PREFIX}*.parquet")):
        first, _, last = path.stem.removeprefix(PREFIX).partition("_")
        if not first <= decision_id <= last:
            continue
        table = pq.read_table(path, filters=[("decision_id", "==", decision_id)])
        if table.num_rows:
            return _decision(table.to_pylist()[0])
    return None


def _batches(engine: Engine, cutoff: datetime, size: int) -> Iterator[list[dict[str, Any]]]:
    query = (
        select(*_COLUMNS)
        .where(_TABLE.c.created_at < cutoff)
        .order_by(_TABLE.c.decision_id)
        .limit(size)
    )
    while True:
        with engine.connect() as connection:
            rows = [dict(row) for row in connection.execute(query).mappings()]
        if not rows:
            return
        yield rows  # deleted by the caller before the next query


def _write_durably(archive_dir: Path, rows: list[dict[str, Any]]) -> Path:
    for row in rows:
        row["created_at"] = as_utc(row["created_at"])
    ids = [row["decision_id"] for row in rows]
    path = archive_dir / f"{PREFIX}{ids[0]}_{ids[-1]}.parquet"
    # A name of its own: two runs at once (a manual one beside the CronJob) never write into
    # the same temporary file.
    partial = archive_dir / f".{path.name}.{uuid.uuid4().hex}.partial"
    pq.write_table(
        pa.Table.from_pylist(rows, schema=SCHEMA),
        partial,
        compression="zstd",
        row_group_size=ROW_GROUP,
    )
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(path)
    _fsync_directory(archive_dir)
    if pq.read_table(path, columns=["decision_id"]).column(0).to_pylist() != ids:
        raise RuntimeError(f"{path} does not read back as written; nothing deleted")
    return path


def _fsync_directory(directory: Path) -> None:
    """Makes the folder's entries (a rename, a removal) durable."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _decision(row: dict[str, Any]) -> Decision:
    # Python's json, not orjson: the log writes an infinite input as Infinity, which only
    # it reads back.
    return Decision(**{**row, "features": json.loads(row["features"])})
