"""``PostgresSaver``: checkpoints in PostgreSQL, for production and for many workers.

    with PostgresSaver.from_conn_string("postgresql://user@host/db") as saver:
        saver.setup()  # once, e.g. at deploy time; idempotent
        graph = builder.compile(checkpointer=saver)

Takes a ``psycopg.Connection`` (shared between threads behind a lock) or a
``psycopg_pool.ConnectionPool`` (one pooled connection per operation). Every operation is
one transaction (a savepoint when the caller already has one open).

* ``setup()`` applies the versioned migrations in ``threadloom_migrations`` behind an
  advisory transaction lock, so several processes may call it at once, and it may run
  inside the caller's transaction.
* Writers of one thread take turns on an advisory transaction lock keyed by the thread
  id. A ``loop`` checkpoint whose parent is no longer the newest checkpoint of its
  (thread, namespace) raises ``CheckpointConflictError``: of two workers continuing from
  one head, exactly one wins.
* Metadata is ``jsonb``; ``list(filter=...)`` uses ``metadata @> %s::jsonb`` (plus an
  exact ``metadata -> key = value`` test for dict/list values, so filters mean equality
  on every saver). Strings in metadata cannot contain NUL characters (a ``jsonb`` limit),
  nor can thread ids or namespaces (a ``text`` limit).
* Values are stored once per channel version; list channels that only grew store just
  their new items (see ``threadloom.checkpoint._delta``).

Schema: the same three tables as the SQLite saver (``threadloom_checkpoints``,
``threadloom_blobs``, ``threadloom_writes``) with ``bytea``/``jsonb`` columns and ``"C"``
collation on keys, so ordering is by code point as everywhere else.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import psycopg
    from psycopg.rows import tuple_row
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "The Postgres savers need psycopg 3: pip install 'threadloom[postgres]'"
    ) from exc

from threadloom.checkpoint._sql import (
    BLOBS,
    CHECKPOINTS,
    WRITES,
    Op,
    PostgresDialect,
    Query,
    drive_sync,
)
from threadloom.checkpoint._sqlsaver import SyncSqlSaver
from threadloom.checkpoint.base import SerializerProtocol

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

__all__ = ["MIGRATIONS", "PostgresSaver"]

T = TypeVar("T")

# Advisory lock classes (first key of the two-int form): "tlth" = thread, "tlmg" = migrations.
_THREAD_LOCK = 0x746C7468
_MIGRATION_LOCK = 0x746C6D67

DIALECT = PostgresDialect(
    name="postgres",
    lock_thread=f"SELECT pg_advisory_xact_lock({_THREAD_LOCK}, hashtext(?))",
    lock_migrations=(
        f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK}, hashtext(COALESCE(current_schema(), '')))"
    ),
    metadata_param="?::jsonb",
    blob_len="octet_length",
    metadata_len="octet_length(metadata::text)",
)

_KEY = 'TEXT COLLATE "C" NOT NULL'

MIGRATIONS: list[tuple[str, ...]] = [
    (
        f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
            thread_id {_KEY},
            checkpoint_ns {_KEY} DEFAULT '',
            checkpoint_id {_KEY},
            parent_checkpoint_id TEXT COLLATE "C",
            type TEXT NOT NULL,
            checkpoint BYTEA NOT NULL,
            metadata JSONB NOT NULL DEFAULT '{{}}',
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {BLOBS} (
            thread_id {_KEY},
            checkpoint_ns {_KEY} DEFAULT '',
            channel {_KEY},
            version {_KEY},
            type TEXT NOT NULL,
            blob BYTEA,
            base_version TEXT COLLATE "C",
            root_version TEXT COLLATE "C",
            PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {WRITES} (
            thread_id {_KEY},
            checkpoint_ns {_KEY} DEFAULT '',
            checkpoint_id {_KEY},
            task_id {_KEY},
            idx INTEGER NOT NULL,
            channel TEXT NOT NULL,
            type TEXT NOT NULL,
            blob BYTEA,
            task_path {_KEY} DEFAULT '',
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


@lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """The shared core writes ``?`` placeholders; psycopg wants ``%s``.

    Safe because no statement of the core contains a literal ``?`` or ``%``.
    """
    return sql.replace("?", "%s")


def _execute(cursor: psycopg.Cursor[Any], query: Query) -> list[tuple[Any, ...]] | None:
    cursor.execute(pg_sql(query.sql), query.params)
    return cursor.fetchall() if query.fetch else None


class PostgresSaver(SyncSqlSaver):
    """A saver on a psycopg 3 ``Connection`` or ``ConnectionPool``."""

    dialect = DIALECT

    def __init__(
        self,
        conn: psycopg.Connection[Any] | ConnectionPool,
        *,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.conn = conn
        self._lock = threading.Lock()

    @classmethod
    @contextmanager
    def from_conn_string(
        cls, conn_string: str, *, serde: SerializerProtocol | None = None
    ) -> Iterator[PostgresSaver]:
        """Connect to ``conn_string`` (autocommit) and close the connection on exit.

        Call ``setup()`` once before first use (this does not, so read-only roles work).
        """
        with psycopg.Connection.connect(conn_string, autocommit=True) as conn:
            yield cls(conn, serde=serde)

    def setup(self) -> None:
        """Create or migrate the tables; idempotent and safe from concurrent processes."""
        self._run(self._core.migrate(MIGRATIONS), write=True)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if isinstance(self.conn, psycopg.Connection):
            with self._lock:
                yield self.conn
        else:
            with self.conn.connection() as conn:
                yield conn

    def _run(self, op: Op[T], *, write: bool) -> T:
        with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cursor,
        ):
            return drive_sync(op, lambda q: _execute(cursor, q))
