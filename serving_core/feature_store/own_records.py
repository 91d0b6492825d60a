"""Records of the platform's own kept inside a Feast online store, beside the clients: the
completeness markers (``completeness``) and the client index (``client_index``).

Both live where the clients live so that whatever empties the store empties them too. Both
need what Feast's public API does not give (the online store's Redis client, its key
prefix, the SQLite file's path): those private attributes are read here, in one place, so a
Feast upgrade that moves them breaks one class.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any, ClassVar, cast

from feast import FeatureStore
from feast.infra.online_stores.helpers import _redis_key_prefix
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.infra.online_stores.sqlite import SqliteOnlineStore

from serving_core.feature_store.definitions import JOIN_KEY


class OwnRecords:
    """Access to one kind of record in a SQLite, Redis or Redis Cluster online store.

    Redis: one key, Feast's key prefix of the ``client`` entity + ``REDIS_NAME`` + the
    project, so Feast's own ``teardown`` (which deletes ``prefix*project``) deletes it with
    the clients; it can never be a client's key (those hold exactly 16 bytes between prefix
    and project). SQLite: a table of its own in the online store's file."""

    REDIS_NAME: ClassVar[bytes]
    SQLITE_TABLE: ClassVar[str]
    WHAT: ClassVar[str]  # for the error on an unsupported store, e.g. "the client index"
    store: FeatureStore

    @property
    def _online(self) -> Any:
        return self.store._get_provider().online_store

    def _redis(self) -> Any:
        online = cast(RedisOnlineStore, self._online)
        return online._get_client(self.store.config.online_store)

    def redis_key(self) -> bytes:
        return _redis_key_prefix([JOIN_KEY]) + self.REDIS_NAME + self.store.config.project.encode()

    def _sqlite_path(self) -> str:
        return str(cast(SqliteOnlineStore, self._online)._get_db_path(self.store.config))

    def _check_kind(self) -> None:
        if not isinstance(self._online, RedisOnlineStore | SqliteOnlineStore):
            raise TypeError(
                f"{self.WHAT}: a SQLite or Redis online store is needed, not "
                f"{type(self._online).__name__}"
            )

    def clear(self) -> None:
        """Remove every record of this kind (tests, operators): the Redis key or the SQLite
        table, the clients untouched."""
        self._check_kind()
        if isinstance(self._online, RedisOnlineStore):
            self._redis().delete(self.redis_key())
            return
        with closing(sqlite3.connect(self._sqlite_path(), timeout=60.0)) as db, db:
            db.execute(f"DROP TABLE IF EXISTS {self.SQLITE_TABLE}")
