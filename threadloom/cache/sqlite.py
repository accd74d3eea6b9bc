"""``SqliteCache``: cache entries in a SQLite table (stdlib ``sqlite3`` only).

Table ``threadloom_cache(ns, key, type, value, expires_at)``, primary key ``(ns, key)``;
``ns`` is the namespace as a JSON array, so namespaces never collide whatever their
strings contain. Expired rows are skipped on read and deleted on the next write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from threadloom.cache.base import BaseCache, FullKey, Namespace, check_key, check_ttl, expiry_of
from threadloom.checkpoint.base import SerializerProtocol

__all__ = ["SqliteCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS threadloom_cache (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    value BLOB,
    expires_at REAL,
    PRIMARY KEY (ns, key)
)
"""


def _ns_text(ns: Namespace) -> str:
    return json.dumps(list(ns), separators=(",", ":"))


class SqliteCache(BaseCache[Any]):
    """A cache in a SQLite database file.

    Args:
        path: the database file (created if missing); ``":memory:"`` for a private
            in-memory database.
        serde: value serializer (see :class:`~threadloom.cache.base.BaseCache`).

    One connection is shared by all threads, behind a lock. Call :meth:`close` (or use it
    as a context manager) to release the file.
    """

    def __init__(self, *, path: str, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        if not isinstance(path, str) or not path:
            raise ValueError(f"SqliteCache needs a file path (or ':memory:'), got {path!r}.")
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        with self._lock:
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        if not keys:
            return {}
        now = time.time()
        wanted = {(_ns_text(ns), key): (ns, key) for ns, key in map(check_key, keys)}
        rows = []
        with self._lock:
            for ns_text, key in wanted:
                row = self._conn.execute(
                    "SELECT type, value, expires_at FROM threadloom_cache "
                    "WHERE ns = ? AND key = ?",
                    (ns_text, key),
                ).fetchone()
                if row is not None and (row[2] is None or row[2] > now):
                    rows.append((wanted[(ns_text, key)], row[0], row[1]))
        return {full: self._decode((type_, bytes(value or b""))) for full, type_, value in rows}

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        now = time.time()
        rows = []
        for full, (value, ttl) in pairs.items():
            ns, key = check_key(full)
            type_, data = self._encode(value)
            rows.append((_ns_text(ns), key, type_, data, expiry_of(check_ttl(ttl), now)))
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.execute(
                    "DELETE FROM threadloom_cache WHERE expires_at IS NOT NULL "
                    "AND expires_at <= ?",
                    (now,),
                )
                self._conn.executemany(
                    "INSERT OR REPLACE INTO threadloom_cache (ns, key, type, value, expires_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        with self._lock:
            if namespaces is None:
                self._conn.execute("DELETE FROM threadloom_cache")
            else:
                self._conn.executemany(
                    "DELETE FROM threadloom_cache WHERE ns = ?",
                    [(_ns_text(tuple(ns)),) for ns in namespaces],
                )

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
