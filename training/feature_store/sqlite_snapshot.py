"""A snapshot into Feast's SQLite online store: one statement per client, rows fanned out
inside SQLite.

Feast's ``SqliteOnlineStore.online_write_batch`` runs one upsert per value from Python:
~20 µs per value here, 72-96 s for 20k clients x 217 features. Even a plain ``executemany``
of prepared rows spends ~5 µs per row, most of it in the sqlite3 module (binding six
parameters, stepping and resetting the statement for every row), while SQLite itself
inserts a row and its two index entries in ~1.5 µs. So a client's rows are sent as one
statement with three parameters, and SQLite fans them out itself:

- ``?1`` the entity key, Feast's ``serialize_entity_key``;
- ``?2`` one 9-byte slot per feature: a double's ``ValueProto`` is ``0x29`` and its 8
  little-endian bytes (checked against ``ValueProto(double_val=x)``), so the slots of a
  chunk of clients are one NumPy byte matrix, and SQL cuts the value out with ``substr``;
- ``?3`` a JSON array with one cell per feature, read by ``json_each``: a double's text as
  Feast stores it in ``value_text`` (``str(x)``: built once per distinct value), a string's
  index in a per-view dictionary (a TEMP table holding each distinct string's
  ``ValueProto`` bytes and text, built with Feast's own proto class), ``null`` when missing
  (NaN or null: Feast stores the empty Value, ``b""``, and no text).

The feature names come from a TEMP table joined on the cell's index; the timestamps are
bound as the datetimes Feast binds (``to_naive_utc``), so the sqlite3 adapter Feast's
module registers turns them into the same integers. The statement is Feast's upsert (``INSERT ...
ON CONFLICT (entity_key, feature_name) DO UPDATE`` of the same columns), so a row that
exists keeps its rowid and a client or feature missing from the frame keeps its rows, as
with Feast. What SQLite ends up holding is Feast's rows, column for column (tested against
Feast's own ``online_write_batch`` and ``write_to_online_store``); only the rowids of new
rows differ, as rows are inserted in primary-key order (entity key, then feature name), so
the three B-trees of a table (rows, primary key, Feast's ``_ek`` index) only ever append.

Readers (the services) may read while this runs: each chunk of clients is one transaction
covering every view, so a query sees a client either before or after its write, never half
of it (Feast's writer commits each view separately; the services' reader reads all views
of a client in one read transaction, so it sees them from the same commit), and the
lock that blocks readers is only held while a chunk is committed (its pages fit the write
cache, so none is spilled into the file earlier; readers wait for it, sqlite3's default 5
s busy timeout). Nothing of the file's durability is changed: the rollback journal Feast's
file uses and its default ``synchronous=FULL``, so a killed or crashed load leaves every
committed chunk and a sound file (``OFF`` would save ~1 s of ~12 for 20k clients here, but
the caller's "materialised" stamp could then outlive the data on power loss).

Configurations this path does not write in Feast's way (vector columns, the
``value_num`` column of ``enable_openai_compatible_store``, a column that is neither a
number nor a string, an SQLite without JSON functions) go through Feast's writer instead:
``supported`` tells.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from feast import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.utils import to_naive_utc

from serving_core.feature_store.definitions import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from serving_core.feature_store.value_bytes import DOUBLE_SIZE, DOUBLE_TAG, check_double_encoding

# Clients per transaction. Every view's rows of a chunk (~24 MB of pages at 217 features)
# must fit the write cache: a spilled cache takes the lock that blocks readers before the
# commit. Neither size changes the load's speed measurably (500-2,000 clients, 2-256 MiB).
CHUNK_CLIENTS = 500
CACHE_KIB = 64 * 1024
# How long a commit waits for readers to finish (they hold their lock for one SELECT).
BUSY_TIMEOUT_S = 60.0

_SLOT = DOUBLE_SIZE
_STRING, _NUMBER = "string", "number"


def _kind(dtype: pl.DataType) -> str | None:
    """How the materialiser turns a column into Values: strings as ``string_val``, every
    number (and an all-null column) as ``double_val``; anything else is not handled here."""
    if dtype == pl.String:
        return _STRING
    if dtype.is_integer() or dtype.is_float() or dtype in (pl.Boolean, pl.Null):
        return _NUMBER
    return None


def supported(config: RepoConfig, frame: pl.DataFrame, views: Sequence[FeatureView]) -> bool:
    """Whether this path writes exactly what Feast would for this store and frame."""
    online = config.online_store
    if getattr(online, "vector_enabled", False):
        return False
    if getattr(online, "enable_openai_compatible_store", False):
        return False  # Feast then fills value_num too (when the table has the column)
    names = {f.name for view in views for f in view.features}
    if any(_kind(frame.schema[name]) is None for name in names):
        return False
    with closing(sqlite3.connect(":memory:")) as connection:
        try:
            connection.execute("SELECT value FROM json_each('[1]')").fetchall()
        except sqlite3.OperationalError:  # an SQLite built without JSON functions
            return False
    return True


@dataclass(frozen=True)
class _View:
    """One view's statement and what its cells are made of."""

    sql: str
    names: list[str]  # in primary-key order: the order a client's rows are inserted
    kinds: list[str]
    strings: dict[str, str]  # each distinct string -> its JSON cell: its dictionary row


def _prepare(
    connection: sqlite3.Connection,
    config: RepoConfig,
    frame: pl.DataFrame,
    view: FeatureView,
    number: int,
) -> _View:
    names = sorted(f.name for f in view.features)  # TEXT sorts by its UTF-8 bytes: code points
    kinds = [_kind(frame.schema[name]) or "" for name in names]
    strings: dict[str, str] = {}
    for name, kind in zip(names, kinds, strict=True):
        if kind == _STRING:
            for value in frame[name].drop_nulls().unique(maintain_order=True).to_list():
                strings.setdefault(value, str(len(strings)))
    features, dictionary = f"feast_features_{number}", f"feast_strings_{number}"
    connection.execute(f"CREATE TEMP TABLE {features} (j INTEGER PRIMARY KEY, name TEXT)")
    connection.executemany(f"INSERT INTO temp.{features} VALUES (?, ?)", enumerate(names))
    connection.execute(
        f"CREATE TEMP TABLE {dictionary} (id INTEGER PRIMARY KEY, value BLOB, value_text TEXT)"
    )
    connection.executemany(
        f"INSERT INTO temp.{dictionary} VALUES (?, ?, ?)",
        ((int(i), ValueProto(string_val=s).SerializeToString(), s) for s, i in strings.items()),
    )
    table = _quote_id(
        _table_id(config.project, view, config.registry.enable_online_feature_view_versioning)
    )
    # Feast's statement (online_write_batch, no vector or value_num column), fed by a SELECT;
    # the WHERE makes "ON CONFLICT" parse as the upsert, not as a join constraint.
    sql = f"""
        INSERT INTO {table} (entity_key, feature_name, value, value_text, event_ts, created_ts)
        SELECT ?1, f.name,
               CASE j.type WHEN 'text' THEN substr(?2, {_SLOT} * j.key + 1, {_SLOT})
                           WHEN 'integer' THEN s.value
                           ELSE x'' END,
               CASE j.type WHEN 'text' THEN j.value WHEN 'integer' THEN s.value_text END,
               ?4, ?5
        FROM json_each(?3) AS j
        JOIN temp.{features} AS f ON f.j = j.key
        LEFT JOIN temp.{dictionary} AS s
               ON s.id = CASE j.type WHEN 'integer' THEN j.value END
        WHERE true
        ON CONFLICT (entity_key, feature_name) DO UPDATE SET
            value = excluded.value, value_text = excluded.value_text,
            event_ts = excluded.event_ts, created_ts = excluded.created_ts
    """
    return _View(sql, names, kinds, strings)


def _cells(values: np.ndarray) -> np.ndarray:
    """Each double's JSON cell: its ``value_text`` as Feast writes it (``str(x)``, quoted:
    a float's text has no character JSON escapes), ``null`` where missing (NaN or null).
    ``str`` runs once per distinct value (bit pattern: -0.0 is not 0.0)."""
    distinct, inverse = np.unique(values.view(np.uint64), return_inverse=True)
    cells = ["null" if x != x else f'"{x}"' for x in distinct.view(np.float64).tolist()]
    return np.array(cells, dtype=object)[inverse]


def _statements(
    view: _View, chunk: pl.DataFrame, keys: list[bytes], stamps: tuple[Any, Any]
) -> list[tuple[Any, ...]]:
    """One parameter tuple per client of the chunk: (key, value slots, JSON cells, stamps)."""
    clients = chunk.height
    slots = np.zeros((clients, len(view.names), _SLOT), dtype=np.uint8)
    cells = np.empty((clients, len(view.names)), dtype=object)
    for j, (name, kind) in enumerate(zip(view.names, view.kinds, strict=True)):
        column = chunk[name]
        if kind == _STRING:
            cells[:, j] = [view.strings.get(s, "null") for s in column.to_list()]
            continue
        values = np.ascontiguousarray(column.cast(pl.Float64).to_numpy(), dtype="<f8")
        slots[:, j, 0] = DOUBLE_TAG
        slots[:, j, 1:] = values.view(np.uint8).reshape(clients, 8)
        cells[:, j] = _cells(values)
    packed = slots.reshape(clients, -1)
    return [
        (key, packed[row].tobytes(), f"[{','.join(cells_row)}]", *stamps)
        for row, (key, cells_row) in enumerate(zip(keys, cells.tolist(), strict=True))
    ]


def _entity_keys(config: RepoConfig, ids: list[int], join_key: str) -> list[bytes]:
    return [
        serialize_entity_key(
            EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=i)]),
            entity_key_serialization_version=config.entity_key_serialization_version,
        )
        for i in ids
    ]


def _chunks(
    config: RepoConfig,
    frame: pl.DataFrame,
    views: list[_View],
    join_key: str,
    stamps: tuple[Any, Any],
) -> Iterator[tuple[int, list[list[tuple[Any, ...]]]]]:
    keys = _entity_keys(config, frame[join_key].to_list(), join_key)
    # Stable: a client listed twice ends with its last row, as with Feast's writer.
    order = sorted(range(len(keys)), key=keys.__getitem__)
    frame = frame[order]
    keys = [keys[i] for i in order]
    for start in range(0, frame.height, CHUNK_CLIENTS):
        chunk = frame.slice(start, CHUNK_CLIENTS)
        chunk_keys = keys[start : start + CHUNK_CLIENTS]
        yield chunk.height, [_statements(v, chunk, chunk_keys, stamps) for v in views]


def write_snapshot(
    config: RepoConfig,
    path: str,
    frame: pl.DataFrame,
    views: Sequence[FeatureView],
    join_key: str,
    progress: Callable[[int], Any] | None = None,
) -> None:
    """Upsert every client of ``frame`` into the views' tables of the SQLite file ``path``."""
    if frame.height == 0:
        return
    check_double_encoding()
    # The frame's timestamps as Feast's writer takes them (one snapshot, one time).
    created = frame[CREATED_TIMESTAMP][0] if CREATED_TIMESTAMP in frame.columns else None
    stamps = (
        to_naive_utc(frame[EVENT_TIMESTAMP][0]),
        None if created is None else to_naive_utc(created),
    )
    per_client = sum(len(v.features) for v in views)
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        prepared = [_prepare(connection, config, frame, v, i) for i, v in enumerate(views)]
        chunks = _chunks(config, frame, prepared, join_key, stamps)
        # The next chunk is built (Python, on a thread) while this one commits: SQLite writes
        # the pages and syncs them without holding the GIL.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-snapshot") as pool:
            pending = pool.submit(next, chunks, None)
            while (chunk := pending.result()) is not None:
                clients, statements = chunk
                connection.execute("BEGIN IMMEDIATE")
                try:
                    for view, rows in zip(prepared, statements, strict=True):
                        connection.executemany(view.sql, rows)
                    pending = pool.submit(next, chunks, None)
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
                if progress is not None:
                    progress(clients * per_client)
    finally:
        connection.close()
