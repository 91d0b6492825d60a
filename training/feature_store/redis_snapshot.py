"""A snapshot into Redis in Feast's layout: one RESTORE per client, built column-wise.

Why not HSET: a client's hash has ~218 fields, which Redis keeps as a listpack (hashes up to
``hash-max-listpack-entries`` = 512 fields, the default). HSET looks every new field up
in the listpack before appending it, so one client costs the server ~0.53 ms (218² / 2
comparisons): 190 s of Redis CPU for 356k clients, whatever the client does. RESTORE with
a plain ``RDB_TYPE_HASH`` payload (a list of field/value strings) makes the server append
the pairs without any lookup, ~0.05 ms per client, into the very same listpack (or hash
table, by the same size rules as HSET).

Why column-wise: every client's payload has the same fields in the same order, a key that
differs only by the client id, and float values that are all 9 bytes (or empty when
missing). One client's command is laid out once as a byte template; a chunk of clients is
a ``(clients, template)`` byte matrix filled column by column with NumPy, the payload's
CRC-64 (which RESTORE checks) is computed for all clients at once, one or two byte columns
per step, and the unused bytes of short values (missing floats, shorter strings) are
dropped with a keep mask. The resulting RESP blob goes to Redis through a redis-py
connection on a thread, so building the next chunk (one core) overlaps Redis' loading of
this one (the other).

What Redis ends up holding is exactly what Feast's ``online_write_batch`` writes: the key
comes from Feast's ``_redis_key``, the field names from ``_mmh3``, strings and timestamps
from their protos' ``SerializeToString``, and doubles are checked against
``ValueProto(double_val=x)`` before anything is written (tests compare the hashes with
Feast's own writes byte for byte; even a listpack's DUMP is the same). Unlike HSET,
RESTORE ... REPLACE replaces the client's whole hash: the caller uses it for snapshots of
every view of the entity only.

One connection receives every key: a single Redis (or Sentinel, whose client is the
master's). A Redis Cluster spreads keys over masters by hash slot: ``redis_cluster`` splits
the clients by master and streams each master its part with these same functions.
"""

from __future__ import annotations

import struct
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from feast import FeatureView, utils
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from google.protobuf.timestamp_pb2 import Timestamp
from redis.connection import Connection

from serving_core.feature_store.definitions import EVENT_TIMESTAMP
from serving_core.feature_store.value_bytes import DOUBLE_TAG, check_double_encoding

# Clients per RESP blob (~3 KB each with 217 features). Every CRC step covers the whole
# chunk: large enough to amortise NumPy's per-call cost (~3,500 steps per chunk), small
# enough that the CRC state (4,096 x 8 bytes) stays in L1 cache.
CHUNK_CLIENTS = 4_096

# ValueProto(double_val=x): field 5, wire type 1 (fixed 64-bit) -> tag 0x29, then the IEEE
# 754 bits little-endian; NaN and nulls are stored as the empty Value (b"").
_DOUBLE_TAG = bytes([DOUBLE_TAG])
# In the payload a double is an RDB string: length 9, tag, 8 bytes (placeholders here);
# a missing one is the empty string: length 0, and the other 9 bytes are dropped.
_DOUBLE_SLOT = b"\x09" + _DOUBLE_TAG + bytes(8)
_RDB_TYPE_HASH = 4  # a hash as a list of field/value strings, read the same since Redis 2
# RESTORE accepts payloads of its RDB version or older; RDB_TYPE_HASH and string and length
# encodings have not changed since, so 9 (Redis 5.0) is accepted by every server since.
_RDB_VERSION = 9
_CRC64_JONES = 0x95AC9329AC4BC9B5  # Redis' CRC-64 (Jones, reflected, init 0, no xorout)
_PROBE_ID = 0x0123456789ABCDEF  # a client id whose 8 bytes appear once in its key


def _bulk(data: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _rdb_length(length: int) -> bytes:
    """RDB's length encoding (rdbSaveLen): 6, 14 or 32 bits, big-endian."""
    if length < 1 << 6:
        return bytes([length])
    if length < 1 << 14:
        return bytes([0x40 | length >> 8, length & 0xFF])
    return b"\x80" + struct.pack(">I", length)


def _rdb_string(data: bytes) -> bytes:
    return _rdb_length(len(data)) + data


def _crc64_tables() -> tuple[np.ndarray, np.ndarray]:
    """Redis' CRC-64 one byte at a time (256 entries) and two bytes at a time (64 Ki)."""
    single = np.arange(256, dtype=np.uint64)
    for _ in range(8):
        shifted = single >> np.uint64(1)
        single = np.where(single & np.uint64(1), shifted ^ np.uint64(_CRC64_JONES), shifted)
    # Two steps from a 16-bit state x with zero data; then for any state c and data bytes
    # b0, b1: crc = pairs[(c ^ (b0 | b1 << 8)) & 0xFFFF] ^ (c >> 16).
    state = np.arange(1 << 16, dtype=np.uint64)
    for _ in range(2):
        state = single[state & np.uint64(0xFF)] ^ (state >> np.uint64(8))
    return single, state


_CRC64, _CRC64_PAIRS = _crc64_tables()
_EIGHT, _SIXTEEN = np.uint64(8), np.uint64(16)


class ChunkCrc:
    """Redis' CRC-64 of every client's payload in a chunk, each step for all clients.

    The chunk's rows are transposed once into planes of byte pairs, so that every step
    reads one contiguous array (a column of the row-major chunk is 4,096 cache misses); a
    step consumes two bytes through the 64 Ki table where it can, else one. Bytes only
    some clients keep (a missing double's 9 bytes, a shorter string's padding) are
    processed for all, then undone for the clients that drop them.
    """

    def __init__(self, rows: np.ndarray) -> None:
        self.pairs = np.ascontiguousarray(rows.view("<u2").T)  # (byte pairs, clients)
        self.crc = np.zeros(rows.shape[0], dtype=np.uint64)
        self._low8 = self.crc.view(np.uint8)[::8]  # the CRC's low byte (little-endian)
        self._low16 = self.crc.view(np.uint16)[::4]
        self._index = np.empty(self.crc.shape, dtype=np.intp)
        self._looked_up = np.empty_like(self.crc)

    def _step(self, data: np.ndarray, low: np.ndarray, table: np.ndarray, shift: Any) -> None:
        np.bitwise_xor(low, data, out=self._index, casting="unsafe")
        # mode="clip": the indices are in range by construction, skip numpy's bounds check.
        np.take(table, self._index, out=self._looked_up, mode="clip")
        np.right_shift(self.crc, shift, out=self.crc)
        np.bitwise_xor(self.crc, self._looked_up, out=self.crc)

    def _byte(self, position: int) -> None:
        plane = self.pairs[position >> 1].view(np.uint8)[position & 1 :: 2]
        self._step(plane, self._low8, _CRC64, _EIGHT)

    def kept(self, start: int, stop: int) -> None:
        """Bytes ``start:stop`` of the rows, which every client keeps."""
        position = start
        if position % 2 and position < stop:
            self._byte(position)
            position += 1
        while position + 1 < stop:
            self._step(self.pairs[position >> 1], self._low16, _CRC64_PAIRS, _SIXTEEN)
            position += 2
        if position < stop:
            self._byte(position)

    def kept_by(self, start: int, stop: int, keep: np.ndarray) -> None:
        """Bytes ``start:stop``, which only the clients where ``keep`` keep."""
        if keep.all():
            self.kept(start, stop)
            return
        before = self.crc.copy()
        self.kept(start, stop)
        np.copyto(self.crc, before, where=~keep)

    def prefix(self, start: int, lengths: np.ndarray) -> None:
        """Each client keeps the first ``lengths`` bytes from ``start``: one run per
        distinct length, each kept by the clients at least that long."""
        done = 0
        for length in np.unique(lengths).tolist():
            self.kept_by(start + done, start + length, lengths >= length)
            done = length


def _check_platform() -> None:
    """Fail before writing anything if this protobuf runtime encodes doubles differently,
    or if NumPy's views of the CRC state would not be little-endian (x86-64 and arm64 are)."""
    if sys.byteorder != "little":
        raise RuntimeError("the RESTORE snapshot needs a little-endian machine")
    check_double_encoding()


def _key_parts(config: RepoConfig, join_key: str) -> tuple[bytes, bytes]:
    """Feast's key of a client is ``prefix + id (int64, little-endian) + suffix``: derive
    both parts from ``_redis_key`` itself and check the split on a second id."""

    def feast_key(client_id: int) -> bytes:
        entity = EntityKeyProto(
            join_keys=[join_key], entity_values=[ValueProto(int64_val=client_id)]
        )
        return _redis_key(
            config.project,
            entity,
            entity_key_serialization_version=config.entity_key_serialization_version,
        )

    marker = struct.pack("<q", _PROBE_ID)
    probe = feast_key(_PROBE_ID)
    if probe.count(marker) != 1:
        raise RuntimeError("Feast's Redis key does not hold the client id as 8 raw bytes")
    prefix, suffix = probe.split(marker)
    if feast_key(-2) != prefix + struct.pack("<q", -2) + suffix:
        raise RuntimeError("Feast's Redis key is not prefix + client id + suffix")
    return prefix, suffix


@dataclass(frozen=True)
class _Coded:
    """A field whose values are few distinct byte strings (strings, timestamps).

    ``table`` holds each distinct value as an RDB string, zero-padded to the longest;
    ``keep`` masks out the padding; ``codes`` gives each client's row of the table.
    """

    offset: int
    table: np.ndarray
    keep: np.ndarray
    codes: np.ndarray

    @property
    def width(self) -> int:
        return int(self.table.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return self.keep.sum(axis=1)


def _dictionary(
    values: Sequence[Any], encode: Callable[[Any], bytes]
) -> tuple[np.ndarray, list[bytes]]:
    """Each value's index among the distinct values, and each distinct value encoded once."""
    index: dict[Any, int] = {}
    codes = np.fromiter(
        (index.setdefault(v, len(index)) for v in values), dtype=np.int32, count=len(values)
    )
    return codes, [encode(v) for v in index]


def _padded(pieces: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The pieces as rows of one zero-padded byte matrix, and the mask of their real bytes."""
    width = max(len(p) for p in pieces)
    table = np.zeros((len(pieces), width), dtype=np.uint8)
    for row, piece in enumerate(pieces):
        table[row, : len(piece)] = np.frombuffer(piece, dtype=np.uint8)
    keep = np.arange(width) < np.array([len(p) for p in pieces])[:, None]
    return table, keep


def _string_value(value: str | None) -> bytes:
    return b"" if value is None else ValueProto(string_val=value).SerializeToString()


def _timestamp(value: Any) -> bytes:
    stamp = Timestamp()
    stamp.FromDatetime(utils.make_tzaware(value))
    return stamp.SerializeToString()


class _Template:
    """One client's command, assembled piece by piece; ``add`` returns a piece's offset."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0

    def add(self, piece: bytes) -> int:
        offset = self.size
        self.pieces.append(piece)
        self.size += len(piece)
        return offset


@dataclass(frozen=True)
class _Payload:
    """The RDB payload of one client's hash; offsets are relative to its first byte."""

    template: _Template
    float_columns: list[str]
    float_offsets: list[int]
    coded: list[_Coded]


def _payload(config: RepoConfig, frame: pl.DataFrame, views: Sequence[FeatureView]) -> _Payload:
    """``RDB_TYPE_HASH``, the field count, then ``_ts:view -> stamp`` and
    ``mmh3(view:feature) -> value`` for every view, in Feast's per-view field order, then
    the RDB version (the CRC covers it)."""
    stamp_codes, stamps = _dictionary(frame[EVENT_TIMESTAMP].to_list(), _timestamp)
    stamp_table, stamp_keep = _padded([_rdb_string(s) for s in stamps])
    payload = _Payload(_Template(), [], [], [])
    template = payload.template
    template.add(bytes([_RDB_TYPE_HASH]) + _rdb_length(sum(1 + len(v.features) for v in views)))
    for view in views:
        name = _versioned_fv_name(view, config)
        template.add(_rdb_string(f"_ts:{name}".encode()))
        offset = template.add(bytes(stamp_table.shape[1]))
        payload.coded.append(_Coded(offset, stamp_table, stamp_keep, stamp_codes))
        for feature in view.features:
            template.add(_rdb_string(_mmh3(f"{name}:{feature.name}")))
            column = frame[feature.name]
            if column.dtype == pl.String:
                codes, values = _dictionary(column.to_list(), _string_value)
                table, keep = _padded([_rdb_string(v) for v in values])
                offset = template.add(bytes(table.shape[1]))
                payload.coded.append(_Coded(offset, table, keep, codes))
            elif column.dtype.is_numeric():
                payload.float_columns.append(feature.name)
                payload.float_offsets.append(template.add(_DOUBLE_SLOT))
            else:
                raise TypeError(f"{feature.name}: no Redis encoding for {column.dtype}")
    template.add(struct.pack("<H", _RDB_VERSION))
    return payload


@dataclass(frozen=True)
class RestoreLayout:
    """Where each part of a client's ``RESTORE key ttl payload REPLACE`` sits in its row.

    ``payload`` is the byte range the CRC covers; its length varies per client (missing
    values, string lengths), so its RESP length goes in ``length_digits`` right-aligned
    digit slots at ``length_offset``, the unused leading ones dropped. ``padding`` bytes
    end the row, kept by no client, so that rows pair up into 16-bit words for the CRC.
    """

    template: np.ndarray
    id_offset: int
    float_columns: list[str]
    float_offsets: list[int]
    coded: list[_Coded]
    length_offset: int
    length_digits: int
    payload: slice
    padding: int = 0

    @property
    def width(self) -> int:
        return int(self.template.shape[0])

    @property
    def crc_offset(self) -> int:
        return int(self.payload.stop)

    def slots(self) -> list[tuple[int, Literal["float", "coded"], int]]:
        """``(offset, kind, index)`` of every value slot in payload order."""
        slots: list[tuple[int, Literal["float", "coded"], int]] = [
            (offset, "float", index) for index, offset in enumerate(self.float_offsets)
        ]
        slots += [(field.offset, "coded", index) for index, field in enumerate(self.coded)]
        return sorted(slots)


def restore_layout(
    config: RepoConfig,
    frame: pl.DataFrame,
    views: Sequence[FeatureView],
    join_key: str,
    ttl_seconds: int | None,
) -> RestoreLayout:
    """Lay out one client's RESTORE command around its payload."""
    _check_platform()
    prefix, suffix = _key_parts(config, join_key)
    payload = _payload(config, frame, views)
    digits = len(str(payload.template.size + 8))  # + the CRC
    head = _Template()
    head.add(b"*5\r\n" + _bulk(b"RESTORE"))
    head.add(b"$%d\r\n%s" % (len(prefix) + 8 + len(suffix), prefix))
    id_offset = head.add(bytes(8))
    head.add(suffix + b"\r\n")
    # RESTORE's TTL is in milliseconds; 0 = no expiry (and drops an earlier one).
    head.add(_bulk(str((ttl_seconds or 0) * 1000).encode()))
    length_offset = head.add(b"$" + b"0" * digits + b"\r\n") + 1
    start = head.size
    tail = bytes(8) + b"\r\n" + _bulk(b"REPLACE")  # CRC placeholder, then REPLACE
    row = b"".join([*head.pieces, *payload.template.pieces, tail])
    padding = len(row) % 2
    return RestoreLayout(
        template=np.frombuffer(row + bytes(padding), dtype=np.uint8),
        id_offset=id_offset,
        float_columns=payload.float_columns,
        float_offsets=[start + offset for offset in payload.float_offsets],
        coded=[_Coded(start + c.offset, c.table, c.keep, c.codes) for c in payload.coded],
        length_offset=length_offset,
        length_digits=digits,
        payload=slice(start, start + payload.template.size),
        padding=padding,
    )


def _write_length(out: np.ndarray, keep: np.ndarray, layout: RestoreLayout) -> None:
    """Each client's payload length (+ 8 CRC bytes) in decimal, without leading zeros."""
    region = layout.payload
    length = keep[:, region].sum(axis=1, dtype=np.int64) + 8
    for place in range(layout.length_digits):
        column = layout.length_offset + layout.length_digits - 1 - place
        out[:, column] = ord("0") + length // 10**place % 10
        if place:
            keep[:, column] = length >= 10**place


def _payload_crc(
    layout: RestoreLayout, out: np.ndarray, missing: np.ndarray, rows: slice
) -> np.ndarray:
    """Each client's payload CRC, field by field: a double's 9 bytes count for the clients
    that have it, a coded value's bytes up to its length."""
    crc = ChunkCrc(out)
    position = layout.payload.start
    for offset, kind, index in layout.slots():
        if kind == "float":
            crc.kept(position, offset + 1)  # up to and with the length byte (9 or 0)
            crc.kept_by(offset + 1, offset + 10, ~missing[:, index])
            position = offset + 10
        else:
            field = layout.coded[index]
            crc.kept(position, offset)
            crc.prefix(offset, field.lengths[field.codes[rows]])
            position = offset + field.width
    crc.kept(position, layout.payload.stop)
    return crc.crc


def restore_chunk(
    layout: RestoreLayout,
    ids: np.ndarray,
    floats: np.ndarray,
    rows: slice,
    buffers: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The RESP bytes of a chunk of clients' RESTOREs: ``ids`` and ``floats`` (clients x
    float columns, NaN = missing) are the chunk's, ``rows`` its position in the coded
    columns. ``buffers`` (bytes, keep mask; at least as many rows as clients) are reused
    from chunk to chunk rather than allocated and page-faulted in each time."""
    count = len(ids)
    out, keep = buffers or (
        np.empty((count, layout.width), np.uint8),
        np.empty((count, layout.width), bool),
    )
    out, keep = out[:count], keep[:count]
    out[:] = layout.template
    keep[:] = True
    keep[:, layout.width - layout.padding :] = False
    out[:, layout.id_offset : layout.id_offset + 8] = (
        ids.astype("<i8").view(np.uint8).reshape(count, 8)
    )
    # Column-major so each column's doubles are contiguous and viewable as (clients, 8).
    bits = np.asfortranarray(floats, dtype="<f8")
    missing = np.isnan(bits)
    for column, offset in enumerate(layout.float_offsets):
        out[:, offset + 2 : offset + 10] = bits[:, column].view(np.uint8).reshape(count, 8)
        gaps = missing[:, column]
        if gaps.any():
            out[gaps, offset] = 0  # the empty string
            keep[gaps, offset + 1 : offset + 10] = False
    for field in layout.coded:
        codes = field.codes[rows]
        out[:, field.offset : field.offset + field.width] = field.table[codes]
        keep[:, field.offset : field.offset + field.width] = field.keep[codes]
    _write_length(out, keep, layout)
    crc = _payload_crc(layout, out, missing, rows)
    out[:, layout.crc_offset : layout.crc_offset + 8] = (
        crc.astype("<u8").view(np.uint8).reshape(count, 8)
    )
    return out[keep]


def restore_chunks(
    layout: RestoreLayout, frame: pl.DataFrame, join_key: str, chunk: int = CHUNK_CLIENTS
) -> Iterator[tuple[np.ndarray, int]]:
    """``(RESP blob, clients)`` for consecutive chunks of ``frame``. The first chunk holds
    one client, so the caller can check that the server takes RESTORE before streaming."""
    if frame[join_key].null_count():
        raise ValueError(f"{join_key} has missing values: those clients have no key")
    numeric = frame.select(pl.col(layout.float_columns).cast(pl.Float64))
    ids = frame[join_key].cast(pl.Int64).to_numpy()
    size = min(chunk, frame.height)
    buffers = (np.empty((size, layout.width), np.uint8), np.empty((size, layout.width), bool))
    starts = [0, *range(1, frame.height, chunk)] if frame.height > 1 else [0]
    for start, stop in zip(starts, [*starts[1:], frame.height], strict=True):
        rows = slice(start, stop)
        floats = numeric.slice(start, stop - start).to_numpy()  # nulls come out as NaN
        yield restore_chunk(layout, ids[rows], floats, rows, buffers), stop - start


def send(connection: Connection, blob: np.ndarray, replies: int) -> None:
    """Send a blob, then read exactly one reply per command; an error reply raises."""
    connection.send_packed_command([blob.data], check_health=False)
    for _ in range(replies):
        connection.read_response()


class _Sender:
    """Sends chunks in order on one connection and, once one has failed, no more: the
    chunk queued behind it must not go out on a connection whose replies are out of step."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.failed: BaseException | None = None

    def __call__(self, blob: np.ndarray, replies: int) -> None:
        if self.failed is not None:
            raise RuntimeError("an earlier chunk failed") from self.failed
        try:
            send(self.connection, blob, replies)
        except BaseException as error:
            self.failed = error
            raise


def send_chunks(
    connection: Connection,
    chunks: Iterator[tuple[np.ndarray, int]],
    progress: Callable[[int], Any] | None = None,
) -> None:
    """Send each chunk (one command per client) on a thread while the next one is built.

    The socket I/O releases the GIL, so NumPy builds chunk k+1 on one core while Redis
    loads chunk k on the other. At most one chunk waits behind the one in flight. On any
    error the connection is closed: unread replies would desynchronise it.
    """
    pending: deque[tuple[Future[None], int]] = deque()
    send_in_order = _Sender(connection)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="redis-snapshot") as sender:
        try:
            for blob, clients in chunks:
                pending.append((sender.submit(send_in_order, blob, clients), clients))
                while len(pending) > 1:
                    _finish(pending.popleft(), progress)
            while pending:
                _finish(pending.popleft(), progress)
        except BaseException:
            for future, _ in pending:
                future.cancel()
            # Let a chunk in flight finish before closing the socket under it.
            wait([future for future, _ in pending])
            connection.disconnect()
            raise


def _finish(sent: tuple[Future[None], int], progress: Callable[[int], Any] | None) -> None:
    future, clients = sent
    future.result()
    if progress is not None:
        progress(clients)
