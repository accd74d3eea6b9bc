"""Each library's checkpoint savers, opened fresh per figure, and the bytes they hold.

Kinds: ``none`` (no checkpointer), ``memory``, ``sqlite`` (a file in a temporary folder,
one per library and figure) and ``postgres`` (one schema per library, kind and process,
``bench_threadloom_<pid>`` and ``bench_langgraph_<pid>``, made fresh per figure through
``search_path``, so the two libraries' tables - or two bench runs' - can never mix even
where their names are the same).

``sqlite-async`` / ``postgres-async``: each library's asyncio saver, opened on the
benchmark's event loop (``run_async``). ``sqlite-full`` / ``postgres-full``: the sync
savers with equal durability on both sides - an fsync per commit on SQLite
(``synchronous=FULL`` for both: threadloom's ``durability="full"``, LangGraph's default),
a WAL flush per commit on PostgreSQL (``synchronous_commit=on`` for both: threadloom's
``durability="full"``, LangGraph's default).
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import os
import tempfile
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from functools import cache
from pathlib import Path
from typing import Any

KINDS = (
    "none",
    "memory",
    "sqlite",
    "postgres",
    "sqlite-async",
    "postgres-async",
    "sqlite-full",
    "postgres-full",
)
DURABLE = ("memory", "sqlite", "postgres")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

_SAVER_MODULES = {
    ("threadloom", "memory"): ("threadloom.checkpoint.memory", "InMemorySaver"),
    ("threadloom", "sqlite"): ("threadloom.checkpoint.sqlite", "SqliteSaver"),
    ("threadloom", "postgres"): ("threadloom.checkpoint.postgres", "PostgresSaver"),
    ("langgraph", "memory"): ("langgraph.checkpoint.memory", "InMemorySaver"),
    ("langgraph", "sqlite"): ("langgraph.checkpoint.sqlite", "SqliteSaver"),
    ("langgraph", "postgres"): ("langgraph.checkpoint.postgres", "PostgresSaver"),
    ("threadloom", "sqlite-async"): ("threadloom.checkpoint.sqlite.aio", "AsyncSqliteSaver"),
    ("threadloom", "postgres-async"): (
        "threadloom.checkpoint.postgres.aio",
        "AsyncPostgresSaver",
    ),
    ("langgraph", "sqlite-async"): ("langgraph.checkpoint.sqlite.aio", "AsyncSqliteSaver"),
    ("langgraph", "postgres-async"): ("langgraph.checkpoint.postgres.aio", "AsyncPostgresSaver"),
}
for _lib, _base in itertools.product(("threadloom", "langgraph"), ("sqlite", "postgres")):
    _SAVER_MODULES[(_lib, f"{_base}-full")] = _SAVER_MODULES[(_lib, _base)]
_counter = itertools.count()
_tmpdir = tempfile.TemporaryDirectory(prefix="threadloom-bench-")


_loop: asyncio.AbstractEventLoop | None = None


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on the benchmark's one event loop (async savers are bound to it)."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


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
    return _postgres_reason() if kind.startswith("postgres") else None


@contextmanager
def _pg_schema(lib: str, kind: str = "postgres", **settings: str) -> Iterator[str]:
    """A fresh schema for ``lib`` and ``kind`` (two kinds may be open at once); yields a
    connection string whose search_path is it (and whose sessions have ``settings``)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    # per kind and process: concurrent bench runs never mix
    schema = f"bench_{lib}" + kind.removeprefix("postgres").replace("-", "_") + f"_{os.getpid()}"
    with psycopg.connect(pg_url(), autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"CREATE SCHEMA {schema}")
    options = " ".join(f"-c {k}={v}" for k, v in {"search_path": schema, **settings}.items())
    try:
        yield make_conninfo(pg_url(), options=options)
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
    base, _, variant = kind.partition("-")
    full = variant == "full"
    kwargs: dict[str, Any] = {"durability": "full"} if full and lib == "threadloom" else {}
    if kind == "memory":
        yield cls()
        return
    with ExitStack() as stack:
        if base == "sqlite":
            target = str(Path(_tmpdir.name) / f"{lib}-{next(_counter)}.sqlite")
        else:
            settings = {"synchronous_commit": "on"} if full else {}
            target = stack.enter_context(_pg_schema(lib, kind, **settings))
        if variant == "async":
            opened = cls.from_conn_string(target, **kwargs)
            saver = run_async(opened.__aenter__())
            stack.callback(lambda: run_async(opened.__aexit__(None, None, None)))
            run_async(saver.setup())
        else:
            saver = stack.enter_context(cls.from_conn_string(target, **kwargs))
            saver.setup()
        if full and base == "sqlite" and lib == "langgraph":
            with saver.lock:
                saver.conn.execute("PRAGMA synchronous=FULL")  # (its default already)
        yield saver


@contextmanager
def shared_target(lib: str, kind: str) -> Iterator[str]:
    """A new database for ``lib``'s ``kind`` (``sqlite`` or ``postgres``) saver, set up,
    for several processes to open at once: yields a SQLite file path or a PostgreSQL
    connection string (a fresh schema, dropped on exit)."""
    with ExitStack() as stack:
        if kind == "sqlite":
            target = str(Path(_tmpdir.name) / f"{lib}-shared-{next(_counter)}.sqlite")
        else:
            target = stack.enter_context(_pg_schema(lib, kind))
        with saver_class(lib, kind).from_conn_string(target) as saver:
            saver.setup()
        yield target


def sqlite_synchronous(lib: str, saver: Any) -> int:
    """The ``PRAGMA synchronous`` level a sync SQLite saver's connection runs at."""
    if lib == "threadloom":
        return int(saver.conn.execute("PRAGMA synchronous").fetchone()[0])
    with saver.lock:
        return int(saver.conn.execute("PRAGMA synchronous").fetchone()[0])


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
