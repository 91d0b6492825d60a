"""The index of client ids the online store holds: prefix search without a key scan.

An advisor types the first digits of a client number and the dashboard suggests the
clients that start with them. The online store is keyed by serialised entity keys (hashes
on Redis, blobs on SQLite) whose order says nothing of the decimal form of the id, and
scanning every key per keystroke is out of the question at 356k clients. So a
materialisation writes, after every client and before its completeness marker (the
marker stays the last write), an index of the run's client ids into the store itself,
where the markers live (``completeness``):

- Redis / Redis Cluster: one sorted set, every member at score 0, searched with
  ``ZRANGEBYLEX``. Its key is Feast's key prefix of the ``client`` entity + a name + the
  project, so Feast's ``teardown`` (``prefix*project``) deletes it with the clients; it can
  never be a client's key (those hold exactly 16 bytes between prefix and project). It
  lives in one hash slot of a cluster (a skiplist of ~100 bytes per client: 37 MB for
  356k clients, measured). Under ``key_ttl_seconds`` it expires with the run's marker,
  before the clients do.
- SQLite: a table of its own in the online store's file, searched by a range of its text
  primary key.

Members are the decimal id behind its number of digits (``06:100002``): within one length,
text order is numeric order, and lengths sort before digits, so the shortest ids come first
and "ascending" means ascending numbers (``99`` before ``100``), not text order. A search
reads one range per possible length (a prefix of 6 digits: lengths 6 to 19), in one round
trip on Redis and one transaction on SQLite, and stops at ``limit`` ids.

The index holds exactly the clients of the last run that reached it: a run replaces it
(SQLite: one transaction; Redis: the new ids added, then the old run's removed, so a
reader sees the old ids, the union, or the new ids, never an empty index). A store
materialised before the index existed has none: ``search`` says so with ``None``.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing

from feast import FeatureStore
from feast.infra.online_stores.redis import RedisOnlineStore

from serving_core.feature_store.own_records import OwnRecords

SQLITE_TABLE = "credit_client_index"
REDIS_NAME = b"credit_client_index:"
MAX_DIGITS = 19  # a positive int64 has at most 19 decimal digits
WRITE_CHUNK = 10_000  # members per ZADD / ZREM / INSERT batch


def member(client_id: int) -> str:
    """The index's text form of a client id: its digit count, a colon, its digits."""
    if client_id <= 0:
        raise ValueError(f"client ids are positive, got {client_id}")
    digits = str(client_id)
    return f"{len(digits):02d}:{digits}"


def _client_id(text: str | bytes) -> int:
    raw = text.decode() if isinstance(text, bytes) else text
    return int(raw.partition(":")[2])


def _ranges(prefix: str) -> list[tuple[str, str]]:
    """[low, high) text ranges of the members whose id starts with ``prefix``, one per
    possible length, shortest first (so in ascending numeric order)."""
    if not prefix.isascii() or not prefix.isdigit():
        raise ValueError(f"a prefix is ASCII digits, got {prefix[:20]!r}")
    if prefix.startswith("0"):
        return []  # no positive id starts with 0
    # ";" follows every digit and ":" in ASCII: [LL:prefix, LL:prefix;) holds exactly
    # the members of length LL that start with the prefix.
    return [(f"{n:02d}:{prefix}", f"{n:02d}:{prefix};") for n in range(len(prefix), MAX_DIGITS + 1)]


class ClientIndex(OwnRecords):
    """Writes and searches the index of a Feast online store (SQLite, Redis, Redis Cluster)."""

    REDIS_NAME = REDIS_NAME
    SQLITE_TABLE = SQLITE_TABLE
    WHAT = "the client index"

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    # -- searching -------------------------------------------------------------------
    def search(self, prefix: str, limit: int) -> list[int] | None:
        """Up to ``limit`` ids starting with ``prefix``, ascending; None when the store has
        no index (materialised before it existed, or emptied). Raises the store's own
        connection errors when it cannot be reached."""
        self._check_kind()
        ranges = _ranges(prefix)
        if isinstance(self._online, RedisOnlineStore):
            return self._search_redis(ranges, limit)
        return self._search_sqlite(ranges, limit)

    def _search_redis(self, ranges: Sequence[tuple[str, str]], limit: int) -> list[int] | None:
        key = self.redis_key()
        # One round trip: whether the index exists, and each length's first `limit` ids.
        with self._redis().pipeline(transaction=False) as pipe:
            pipe.exists(key)
            for low, high in ranges:
                pipe.zrangebylex(key, f"[{low}", f"({high}", start=0, num=limit)
            exists, *found = pipe.execute()
        if not exists:
            return None
        return [_client_id(m) for members in found for m in members][:limit]

    def _search_sqlite(self, ranges: Sequence[tuple[str, str]], limit: int) -> list[int] | None:
        path = self._sqlite_path()
        if not os.path.exists(path):
            return None  # a reader never creates the file
        ids: list[int] = []
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            db.execute("BEGIN")  # one snapshot for every range
            try:
                for low, high in ranges:
                    rows = db.execute(
                        f"SELECT client_id FROM {SQLITE_TABLE} WHERE id_text >= ? AND id_text < ? "
                        "ORDER BY id_text LIMIT ?",
                        (low, high, limit - len(ids)),
                    ).fetchall()
                    ids.extend(int(row[0]) for row in rows)
                    if len(ids) >= limit:
                        break
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    return None
                raise
            finally:
                db.rollback()
        return ids

    # -- writing ---------------------------------------------------------------------
    def write(self, client_ids: Iterable[int], expires_at: float | None = None) -> int:
        """Make the index hold exactly ``client_ids``; returns how many. ``expires_at``
        (Unix time, Redis only): when the index expires, as the run's marker does."""
        self._check_kind()
        ids = sorted({int(i) for i in client_ids})
        members = [member(i) for i in ids]
        if isinstance(self._online, RedisOnlineStore):
            self._write_redis(members, expires_at)
        else:
            self._write_sqlite(ids, members)
        return len(ids)

    def _write_redis(self, members: list[str], expires_at: float | None) -> None:
        client, key = self._redis(), self.redis_key()
        new = set(members)
        # Added first, the previous run's ids removed after: never an empty index between.
        for start in range(0, len(members), WRITE_CHUNK):
            client.zadd(key, dict.fromkeys(members[start : start + WRITE_CHUNK], 0))
        stale = [m for m in client.zrange(key, 0, -1) if m.decode() not in new]
        for start in range(0, len(stale), WRITE_CHUNK):
            client.zrem(key, *stale[start : start + WRITE_CHUNK])
        if expires_at is not None:
            client.expireat(key, math.floor(expires_at))
        else:
            client.persist(key)

    def _write_sqlite(self, ids: list[int], members: list[str]) -> None:
        with closing(sqlite3.connect(self._sqlite_path(), timeout=60.0)) as db, db:
            # WITHOUT ROWID: the rows are the primary key's B-tree, searched by range.
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {SQLITE_TABLE} "
                "(id_text TEXT PRIMARY KEY, client_id INTEGER NOT NULL) WITHOUT ROWID"
            )
            db.execute(f"DELETE FROM {SQLITE_TABLE}")  # same transaction: old or new, never none
            db.executemany(
                f"INSERT INTO {SQLITE_TABLE} (id_text, client_id) VALUES (?, ?)",
                zip(members, ids, strict=True),
            )
