"""``SqliteSaver``: checkpoints in one SQLite file - the embedded, zero-setup durable saver.

Use it when one machine runs the graph: a laptop, a single server, a desktop app. A paused
thread survives restarts; several processes may share the file (WAL mode, writers take
turns through ``BEGIN IMMEDIATE``). For many machines use ``PostgresSaver``.

    with SqliteSaver.from_conn_string("checkpoints.db") as saver:
        graph = builder.compile(checkpointer=saver)

Storage grows with what changed: values are stored once per channel version, and list
channels that only grew store just their new items (see ``threadloom.checkpoint._delta``).
Two runs continuing from the same checkpoint cannot both win: the second ``loop``
checkpoint raises ``CheckpointConflictError``.

Schema (created by ``setup()``, which every method runs on first use; versioned in
``threadloom_migrations``):

* ``threadloom_checkpoints(thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
  type, checkpoint, metadata JSON, created_at)`` - the checkpoint without its values.
* ``threadloom_blobs(thread_id, checkpoint_ns, channel, version, type, blob, base_version,
  root_version)`` - one value per channel version; ``base_version`` set means ``blob``
  holds only the items appended to that version's list.
* ``threadloom_writes(thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type,
  blob, task_path)`` - pending writes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from threadloom.checkpoint._sql import (
    BLOBS,
    CHECKPOINTS,
    WRITES,
    Op,
    Query,
    SqliteDialect,
    drive_sync,
)
from threadloom.checkpoint._sqlsaver import SyncSqlSaver
from threadloom.checkpoint.base import SerializerProtocol

__all__ = ["SqliteSaver", "MIGRATIONS"]

T = TypeVar("T")

DIALECT = SqliteDialect(
    name="sqlite",
    lock_thread=None,  # BEGIN IMMEDIATE already serializes every writer of the file
    lock_migrations=None,
    metadata_param="?",
    blob_len="length",
    metadata_len="length(CAST(metadata AS BLOB))",
)

MIGRATIONS: list[tuple[str, ...]] = [
    (
        f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL DEFAULT '',
            checkpoint_id TEXT NOT NULL,
            parent_checkpoint_id TEXT,
            type TEXT NOT NULL,
            checkpoint BLOB NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{{}}',
            created_at REAL NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {BLOBS} (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL DEFAULT '',
            channel TEXT NOT NULL,
            version TEXT NOT NULL,
            type TEXT NOT NULL,
            blob BLOB,
            base_version TEXT,
            root_version TEXT,
            PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {WRITES} (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL DEFAULT '',
            checkpoint_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            channel TEXT NOT NULL,
            type TEXT NOT NULL,
            blob BLOB,
            task_path TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
        )""",
    ),
    (
        f"CREATE INDEX IF NOT EXISTS {BLOBS}_root ON {BLOBS} "
        "(thread_id, checkpoint_ns, channel, root_version) WHERE root_version IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_created ON {CHECKPOINTS} "
        "(thread_id, created_at)",
    ),
]
"""Append only: each entry is one schema version, applied once, in order."""


def _connect(conn_string: str) -> sqlite3.Connection:
    """A connection usable from any thread (the saver serializes access itself)."""
    return sqlite3.connect(
        conn_string,
        check_same_thread=False,
        isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        timeout=30.0,  # wait for other processes' write transactions instead of failing
        uri=conn_string.startswith("file:"),
    )


def _enable_wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Switch a file database to WAL, retrying while another process holds a lock.

    Changing the journal mode needs an exclusive lock, and SQLite answers "database is
    locked" at once (without waiting) when waiting could deadlock, e.g. while another
    process runs ``setup()`` at the same moment: so retry here, with backoff.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _is_file(conn: sqlite3.Connection) -> bool:
    row = conn.execute("PRAGMA database_list").fetchone()
    return bool(row and row[2])  # in-memory and temporary databases have no file name


class _SqliteRunner:
    """Runs one operation in one transaction on a connection shared between threads."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.RLock()

    def run(self, op: Op[T], *, write: bool) -> T:
        with self.lock:
            conn = self.conn
            nested = conn.in_transaction  # the caller's own transaction: use a savepoint
            conn.execute(
                "SAVEPOINT threadloom" if nested else "BEGIN IMMEDIATE" if write else "BEGIN"
            )
            try:
                cursor = conn.cursor()
                result = drive_sync(op, lambda q: _execute(cursor, q))
            except BaseException:
                if conn.in_transaction:
                    if nested:
                        conn.execute("ROLLBACK TO threadloom")
                        conn.execute("RELEASE threadloom")
                    else:
                        conn.execute("ROLLBACK")
                raise
            conn.execute("RELEASE threadloom" if nested else "COMMIT")
            return result


def _execute(cursor: sqlite3.Cursor, query: Query) -> list[tuple[Any, ...]] | None:
    cursor.execute(query.sql, query.params)
    return cursor.fetchall() if query.fetch else None


class SqliteSaverBase(SyncSqlSaver):
    """What the sync and the async SQLite savers share: connection, lock, lazy setup."""

    dialect = DIALECT

    def __init__(
        self, conn: sqlite3.Connection, *, serde: SerializerProtocol | None = None
    ) -> None:
        super().__init__(serde=serde)
        self.conn = conn
        self.is_setup = False
        self._runner = _SqliteRunner(conn)

    def _setup_sync(self) -> None:
        with self._runner.lock:
            if self.is_setup:
                return
            if _is_file(self.conn) and not self.conn.in_transaction:
                _enable_wal(self.conn)
            self._runner.run(self._core.migrate(MIGRATIONS), write=True)
            self.is_setup = True

    def _run(self, op: Op[T], *, write: bool) -> T:
        if not self.is_setup:
            self._setup_sync()
        return self._runner.run(op, write=write)


class SqliteSaver(SqliteSaverBase):
    """A saver on one ``sqlite3.Connection``, safe to share between threads.

    Pass a connection opened with ``check_same_thread=False`` (``from_conn_string`` does
    it for you). The async methods run the sync ones in a worker thread; in asyncio code
    ``AsyncSqliteSaver`` offers the same with an async ``setup``/``from_conn_string``.
    """

    @classmethod
    @contextmanager
    def from_conn_string(
        cls, conn_string: str, *, serde: SerializerProtocol | None = None
    ) -> Iterator[SqliteSaver]:
        """Open ``conn_string`` (a file path, ``":memory:"`` or a ``file:`` URI), set up the
        schema, and close the connection on exit."""
        conn = _connect(conn_string)
        try:
            saver = cls(conn, serde=serde)
            saver.setup()
            yield saver
        finally:
            conn.close()

    def setup(self) -> None:
        """Create or migrate the tables (idempotent; safe from several processes at once).

        Runs automatically on first use; call it to migrate at deploy time instead.
        """
        self._setup_sync()
