"""Each library's checkpoint savers, opened fresh per figure, and the bytes they hold.

Kinds: ``none`` (no checkpointer), ``memory``, ``sqlite`` (a file in a temporary folder,
one per library and figure) and ``postgres`` (one schema per library and process,
``bench_threadloom_<pid>`` and ``bench_langgraph_<pid>``, made fresh per figure through
``search_path``, so the two libraries' tables - or two bench runs' - can never mix).
"""

from __future__ import annotations

import importlib
import itertools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

KINDS = ("none", "memory", "sqlite", "postgres")
DURABLE = ("memory", "sqlite", "postgres")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

_SAVER_MODULES = {
    ("threadloom", "memory"): ("threadloom.checkpoint.memory", "InMemorySaver"),
    ("threadloom", "sqlite"): ("threadloom.checkpoint.sqlite", "SqliteSaver"),
    ("threadloom", "postgres"): ("threadloom.checkpoint.postgres", "PostgresSaver"),
    ("langgraph", "memory"): ("langgraph.checkpoint.memory", "InMemorySaver"),
    ("langgraph", "sqlite"): ("langgraph.checkpoint.sqlite", "SqliteSaver"),
    ("langgraph", "postgres"): ("langgraph.checkpoint.postgres", "PostgresSaver"),
}
_counter = itertools.count()
_tmpdir = tempfile.TemporaryDirectory(prefix="threadloom-bench-")


def pg_url() -> str:
    return os.environ.get("THREADLOOM_TEST_POSTGRES_URL", DEFAULT_PG_URL)


def saver_class(lib: str, kind: str) -> Any:
    module, name = _SAVER_MODULES[(lib, kind)]
    return getattr(importlib.import_module(module), name)


@cache
def _postgres_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(pg_url(), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {pg_url()} not reachable: {exc}".splitlines()[0]
    return None


def unavailable(lib: str, kind: str) -> str | None:
    """Why ``lib``'s ``kind`` saver cannot be used now, or None when it can."""
    if kind == "none":
        return None
    try:
        saver_class(lib, kind)
    except Exception as exc:
        return f"{_SAVER_MODULES[(lib, kind)][0]} not importable yet ({type(exc).__name__})"
    return _postgres_reason() if kind == "postgres" else None


@contextmanager
def _pg_schema(lib: str) -> Iterator[str]:
    """A fresh schema for ``lib``; yields a connection string whose search_path is it."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"bench_{lib}_{os.getpid()}"  # per process: concurrent bench runs never mix
    with psycopg.connect(pg_url(), autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield make_conninfo(pg_url(), options=f"-c search_path={schema}")
    finally:
        with psycopg.connect(pg_url(), autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def open_saver(lib: str, kind: str) -> Iterator[Any]:
    """A new, empty saver of ``kind`` for ``lib`` (None for ``none``)."""
    if kind == "none":
        yield None
        return
    cls = saver_class(lib, kind)
    if kind == "memory":
        yield cls()
    elif kind == "sqlite":
        path = Path(_tmpdir.name) / f"{lib}-{next(_counter)}.sqlite"
        with cls.from_conn_string(str(path)) as saver:
            saver.setup()
            yield saver
    else:
        with _pg_schema(lib) as conninfo, cls.from_conn_string(conninfo) as saver:
            saver.setup()
            yield saver


# -- bytes held ---------------------------------------------------------------------


def stored_bytes(lib: str, kind: str, saver: Any, thread_id: str) -> tuple[int, bool]:
    """Payload bytes ``saver`` holds for ``thread_id``, and whether the figure is exact.

    threadloom's savers report it themselves (``stored_bytes``); LangGraph's are measured
    from their tables or dicts: checkpoint, metadata, channel value and write payloads.
    """
    if lib == "threadloom":
        if hasattr(saver, "stored_bytes"):
            return int(saver.stored_bytes(thread_id)), True
        return _threadloom_memory_estimate(saver, thread_id), False
    if kind == "memory":
        return _langgraph_memory(saver, thread_id), True
    if kind == "sqlite":
        return _langgraph_sqlite(saver, thread_id), True
    return _langgraph_postgres(saver, thread_id), True


def _langgraph_memory(saver: Any, thread_id: str) -> int:
    total = 0
    for per_ns in saver.storage.get(thread_id, {}).values():
        for checkpoint, metadata, _parent in per_ns.values():
            total += len(checkpoint[1]) + len(metadata[1])
    total += sum(len(v[1]) for k, v in saver.blobs.items() if k[0] == thread_id)
    for key, bucket in saver.writes.items():
        if key[0] == thread_id:
            total += sum(len(w[2][1]) for w in bucket.values())
    return total


def _threadloom_memory_estimate(saver: Any, thread_id: str) -> int:
    """Until threadloom's InMemorySaver has ``stored_bytes``: the same payloads, with the
    checkpoint (kept as a dict) counted as its serialized size."""
    total = 0
    for per_ns in saver.storage.get(thread_id, {}).values():
        for checkpoint, metadata, _parent in per_ns.values():
            total += len(saver.serde.dumps_typed(checkpoint)[1]) + len(metadata[1])
    total += sum(len(v[1]) for k, v in saver.blobs.items() if k[0] == thread_id)
    for key, bucket in saver.writes.items():
        if key[0] == thread_id:
            total += sum(len(w[2][1]) for w in bucket.values())
    return total


def _langgraph_sqlite(saver: Any, thread_id: str) -> int:
    n = "length(CAST({} AS BLOB))"
    sql = (
        f"SELECT (SELECT COALESCE(SUM({n.format('checkpoint')} + {n.format('metadata')}), 0)"
        " FROM checkpoints WHERE thread_id = ?),"
        f" (SELECT COALESCE(SUM({n.format('value')}), 0) FROM writes WHERE thread_id = ?)"
    )
    with saver.lock:
        row = saver.conn.execute(sql, (thread_id, thread_id)).fetchone()
    return int(sum(row))


def _langgraph_postgres(saver: Any, thread_id: str) -> int:
    from psycopg.rows import tuple_row

    sql = (
        "SELECT (SELECT COALESCE(SUM(octet_length(checkpoint::text)"
        " + octet_length(metadata::text)), 0) FROM checkpoints WHERE thread_id = %s),"
        " (SELECT COALESCE(SUM(octet_length(blob)), 0) FROM checkpoint_blobs"
        " WHERE thread_id = %s),"
        " (SELECT COALESCE(SUM(octet_length(blob)), 0) FROM checkpoint_writes"
        " WHERE thread_id = %s)"
    )
    with saver.lock, saver.conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(sql, (thread_id,) * 3)
        row = cur.fetchone()
    return int(sum(row or ()))
