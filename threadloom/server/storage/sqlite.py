"""``SqliteStorage``: the embedded server storage - one SQLite file, one process.

The file holds everything: the checkpoints (``SqliteSaver``'s tables), the store
(``SqliteStore``'s), and the server's records:

* ``server_assistants`` / ``server_assistant_versions`` - assistants and every version;
* ``server_threads`` - thread records (status, metadata, the latest values and pending
  interrupts, so searches by status or values read one table);
* ``server_runs`` - runs and the run queue: ``status`` pending -> running -> final,
  ``seq`` the queue order, ``worker_id``/``lease_expires_at`` the claim; a partial
  unique index allows one ``running`` run per thread;
* ``server_crons``.

Statements run on one dedicated thread (one connection, so no writer waits on
another inside this process); wake-ups and run streams are in-process
(``asyncio`` events, ``LocalStreams``), so one process serves a file: a second
``SqliteStorage`` on a file another process serves is refused (``DatabaseInUseError``,
naming that process) - it would take that process's runs while their waiters and
streams wait in vain, and fire its crons a second time. The lock is an ``flock`` on
``<file>.lock`` beside the database (never on the database file itself, whose POSIX
locks a second descriptor of the same process would drop when closed), held while the
storage is open and released by the system when the process dies.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Any, TypeVar

from threadloom.engine.worker_threads import WorkerThreads
from threadloom.server.errors import Conflict
from threadloom.server.records import matches, now_iso
from threadloom.server.storage import _sqlite_inline as _inline
from threadloom.server.storage.base import (
    RUN_ACTIVE,
    CancelAction,
    CancelCallback,
    RunWebhook,
    Storage,
    StreamEvent,
)
from threadloom.server.storage.rows import ASSISTANT_COLS as _ASSISTANT_COLS
from threadloom.server.storage.rows import ASSISTANT_SORT as _ASSISTANT_SORT
from threadloom.server.storage.rows import CRON_COLS as _CRON_COLS
from threadloom.server.storage.rows import CRON_SORT as _CRON_SORT
from threadloom.server.storage.rows import (
    PENDING_THREAD_COLS,
    PENDING_THREADS,
    PENDING_THREADS_INDEX,
    THREAD_COLS_WITHOUT_VALUES,
    THREAD_SEARCH_INDEXES,
    ThreadPage,
    ended_thread_sets,
    merge_thread,
    next_assistant_version,
    public_thread,
    statuses_of,
    string_equalities,
    thread_values,
    thread_version,
    value_needles,
)
from threadloom.server.storage.rows import RUN_COLS as _RUN_COLS
from threadloom.server.storage.rows import THREAD_COLS as _THREAD_COLS
from threadloom.server.storage.rows import THREAD_SORT as _THREAD_SORT
from threadloom.server.storage.rows import assistant_row as _assistant
from threadloom.server.storage.rows import cron_row as _cron
from threadloom.server.storage.rows import order_by as _order
from threadloom.server.storage.rows import page as _page
from threadloom.server.storage.rows import run_row as _run
from threadloom.server.storage.rows import thread_row as _thread
from threadloom.server.storage.rows import to_json as _j
from threadloom.server.storage.streams import LocalStreams

__all__ = ["DatabaseInUseError", "SqliteStorage"]


class DatabaseInUseError(RuntimeError):
    """Another process serves this SQLite file (see the module docstring)."""


def _serve_alone(path: str) -> Any:
    """Hold the lock saying this process serves the file at ``path`` (an open file, to
    keep open until the storage closes; None where there is nothing to lock: an
    in-memory database, a ``file:`` URI, a system or file system without ``flock``)."""
    if path.startswith("file:"):
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    import os

    lock = open(f"{path}.lock", "a+")  # noqa: SIM115 (open until close())
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise DatabaseInUseError(
            f"{path} is served by another process (pid {holder}): one process serves a "
            "SQLite file - its runs, streams and wake-ups live in that process. Stop the "
            "other one, or point this one at another file; for several processes, use "
            "PostgreSQL (--database postgresql://...)."
        ) from None
    except OSError:  # a file system without flock (some network mounts): unguarded
        lock.close()
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock

T = TypeVar("T")

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE IF NOT EXISTS server_assistants (
            assistant_id TEXT PRIMARY KEY,
            graph_id TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT,
            config TEXT NOT NULL,
            context TEXT NOT NULL,
            metadata TEXT NOT NULL,
            version INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS server_assistant_versions (
            assistant_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            graph_id TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT,
            config TEXT NOT NULL,
            context TEXT NOT NULL,
            metadata TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (assistant_id, version)
        )""",
        """CREATE TABLE IF NOT EXISTS server_threads (
            thread_id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            state_updated_at TEXT NOT NULL,
            metadata TEXT NOT NULL,
            status TEXT NOT NULL,
            config TEXT NOT NULL,
            "values" TEXT,
            interrupts TEXT,
            error TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS server_threads_status ON server_threads (status)",
        """CREATE TABLE IF NOT EXISTS server_thread_ttl (
            thread_id TEXT PRIMARY KEY,
            strategy TEXT NOT NULL,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS server_thread_ttl_at ON server_thread_ttl (expires_at)",
        """CREATE TABLE IF NOT EXISTS server_runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL UNIQUE,
            thread_id TEXT NOT NULL,
            assistant_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            status TEXT NOT NULL,
            metadata TEXT NOT NULL,
            kwargs TEXT NOT NULL,
            multitask_strategy TEXT,
            run_at REAL NOT NULL DEFAULT 0,
            worker_id TEXT,
            lease_expires_at REAL,
            cancel_action TEXT,
            attempt INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX IF NOT EXISTS server_runs_thread ON server_runs (thread_id, seq)",
        "CREATE INDEX IF NOT EXISTS server_runs_status ON server_runs (status, seq)",
        # one running run per thread, whatever the code above does
        "CREATE UNIQUE INDEX IF NOT EXISTS server_runs_one_running ON server_runs (thread_id) "
        "WHERE status = 'running'",
        """CREATE TABLE IF NOT EXISTS server_crons (
            cron_id TEXT PRIMARY KEY,
            assistant_id TEXT,
            thread_id TEXT,
            user_id TEXT,
            schedule TEXT NOT NULL,
            timezone TEXT,
            end_time TEXT,
            payload TEXT NOT NULL,
            metadata TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            on_run_completed TEXT,
            next_run_date TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
    ),
    # v1: the threads that may have something pending for a person, indexed apart
    (PENDING_THREADS_INDEX,),
    # v2: threads newest first (all, and by status), as a search pages them by default
    THREAD_SEARCH_INDEXES,
    # v3: webhook deliveries, kept until sent (``queue_webhook``)
    (
        """CREATE TABLE IF NOT EXISTS server_webhooks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            url TEXT NOT NULL,
            body BLOB NOT NULL,
            name TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at REAL NOT NULL,
            created_at TEXT NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS server_webhooks_due ON server_webhooks (next_at)",
    ),
]

#: how many assistants' rows ``SqliteStorage`` keeps (it forgets all of them when full)
ASSISTANT_CACHE_SIZE = 1024


def _metadata_strings(metadata: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """The SQL conditions (``AND ...``) and arguments comparing a metadata filter's
    strings in the database (``string_equalities``)."""
    sql, args = "", []
    for path, want in string_equalities(metadata):
        sql += " AND json_extract(metadata, ?) = ?"
        args += [path, want]
    return sql, args


class SqliteStorage(Storage):
    """Server storage in one SQLite file (see the module docstring).

    ``path`` is a file path (or ``":memory:"`` for a throwaway server). The checkpointer
    is a ``SqliteSaver`` and the store a ``SqliteStore`` on the same file.
    """

    def __init__(self, path: str) -> None:
        from threadloom.checkpoint.sqlite import _connect
        from threadloom.store.sqlite import SqliteStore

        if path == ":memory:":
            # one shared in-memory database for the saver, the store and the records
            path = f"file:threadloom-server-{id(self)}?mode=memory&cache=shared"
        self.path = path
        self._serving = _serve_alone(path)  # (first: a refused storage opens nothing)
        # One connection and one lock for the saver, the store and the records: writers
        # in this process take turns on the lock instead of meeting SQLite's busy
        # handler, whose sleeps (up to 100 ms each) would dominate latency under load.
        self._conn = _connect(path)
        self.checkpointer = _inline.LoopSqliteSaver(self._conn)
        self._lock = self.checkpointer._runner.lock
        self._inline = self.checkpointer.inline
        self.store = SqliteStore(self._conn)
        self.store._lock = self._lock
        self._pool = WorkerThreads(max_threads=1, name="threadloom-db")
        self._streams = LocalStreams()
        self._work = asyncio.Event()
        self._run_waiters: dict[str, list[asyncio.Future]] = {}
        self._cancel_callbacks: list[CancelCallback] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # assistant rows by id, as read (every write to an assistant forgets its row; no
        # other process writes them - see the module docstring)
        self._assistant_rows: dict[str, tuple] = {}

    # -- plumbing ----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        self._loop = loop
        return await self._pool.run(loop, fn, *args)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self._conn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        done = self._inline.run(self._tx, fn)
        if done is _inline.BUSY:
            return await self._call(self._tx, fn)
        await asyncio.sleep(0)  # other tasks run meanwhile, as they would during a hop
        return done

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        done = self._inline.run(self._locked, fn)
        if done is _inline.BUSY:
            return await self._call(self._locked, fn)
        await asyncio.sleep(0)
        return done

    async def setup(self) -> None:
        def migrate(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE IF NOT EXISTS server_migrations (v INTEGER PRIMARY KEY)")
            row = conn.execute("SELECT max(v) FROM server_migrations").fetchone()
            current = -1 if row[0] is None else int(row[0])
            for version, statements in enumerate(MIGRATIONS):
                if version <= current:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO server_migrations (v) VALUES (?)", (version,))

        await self._call(self.checkpointer.setup)  # WAL mode for a file database
        await self._call(self.store.setup)
        await self._write(migrate)

    async def close(self) -> None:
        await self._call(self._locked, lambda conn: conn.close())
        self._pool.close()
        if self._serving is not None:
            self._serving.close()  # (the lock goes with it)
            self._serving = None

    # -- assistants --------------------------------------------------------------------

    async def create_assistant(self, record: dict[str, Any], *, if_exists: str) -> dict:
        def go(conn: sqlite3.Connection) -> dict:
            row = conn.execute(
                f"SELECT {_ASSISTANT_COLS} FROM server_assistants WHERE assistant_id = ?",
                (record["assistant_id"],),
            ).fetchone()
            if row is not None:
                if if_exists == "do_nothing":
                    return _assistant(row)
                raise Conflict(f"Assistant {record['assistant_id']} already exists.")
            self._insert_assistant_version(conn, record)
            self._assistant_rows.pop(record["assistant_id"], None)
            conn.execute(
                f"INSERT INTO server_assistants ({_ASSISTANT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (record["assistant_id"], record["graph_id"], record["name"],
                 record.get("description"), _j(record["config"]), _j(record["context"]),
                 _j(record["metadata"]), record["version"], record["created_at"],
                 record["updated_at"]),
            )
            return record

        return await self._write(go)

    @staticmethod
    def _insert_assistant_version(conn: sqlite3.Connection, record: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO server_assistant_versions (assistant_id, version, graph_id, name, "
            "description, config, context, metadata, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (record["assistant_id"], record["version"], record["graph_id"], record["name"],
             record.get("description"), _j(record["config"]), _j(record["context"]),
             _j(record["metadata"]), record["updated_at"]),
        )

    async def get_assistant(self, assistant_id: str) -> dict | None:
        row = self._assistant_rows.get(assistant_id)  # each run reads its assistant twice
        if row is not None:
            return _assistant(row)

        def go(conn: sqlite3.Connection) -> dict | None:
            row = conn.execute(
                f"SELECT {_ASSISTANT_COLS} FROM server_assistants WHERE assistant_id = ?",
                (assistant_id,),
            ).fetchone()
            if row is None:
                return None
            if len(self._assistant_rows) >= ASSISTANT_CACHE_SIZE:
                self._assistant_rows.clear()
            self._assistant_rows[assistant_id] = tuple(row)  # (under the connection's lock)
            return _assistant(row)

        return await self._read(go)

    async def update_assistant(self, assistant_id: str, changes: dict[str, Any]) -> dict | None:
        def go(conn: sqlite3.Connection) -> dict | None:
            row = conn.execute(
                f"SELECT {_ASSISTANT_COLS} FROM server_assistants WHERE assistant_id = ?",
                (assistant_id,),
            ).fetchone()
            if row is None:
                return None
            current = _assistant(row)
            latest = conn.execute(
                "SELECT max(version) FROM server_assistant_versions WHERE assistant_id = ?",
                (assistant_id,),
            ).fetchone()[0]
            new = next_assistant_version(current, changes, latest)
            self._insert_assistant_version(conn, new)
            self._assistant_rows.pop(assistant_id, None)
            conn.execute(
                "UPDATE server_assistants SET graph_id=?, name=?, description=?, config=?, "
                "context=?, metadata=?, version=?, updated_at=? WHERE assistant_id=?",
                (new["graph_id"], new["name"], new.get("description"), _j(new["config"]),
                 _j(new["context"]), _j(new["metadata"]), new["version"], new["updated_at"],
                 assistant_id),
            )
            return new

        return await self._write(go)

    async def delete_assistant(self, assistant_id: str) -> bool:
        def go(conn: sqlite3.Connection) -> bool:
            self._assistant_rows.pop(assistant_id, None)
            cur = conn.execute(
                "DELETE FROM server_assistants WHERE assistant_id = ?", (assistant_id,)
            )
            conn.execute(
                "DELETE FROM server_assistant_versions WHERE assistant_id = ?", (assistant_id,)
            )
            return cur.rowcount > 0

        return await self._write(go)

    def _assistants(
        self, conn: sqlite3.Connection, graph_id: str | None, name: str | None,
        metadata: dict | None, order: str,
    ) -> list[dict]:
        sql = f"SELECT {_ASSISTANT_COLS} FROM server_assistants WHERE 1=1"
        args: list[Any] = []
        if graph_id is not None:
            sql += " AND graph_id = ?"
            args.append(graph_id)
        if name is not None:
            sql += " AND name LIKE ?"
            args.append(f"%{name}%")
        rows = [_assistant(r) for r in conn.execute(f"{sql} ORDER BY {order}", args)]
        return [r for r in rows if matches(r["metadata"], metadata)]

    async def search_assistants(self, *, graph_id, name, metadata, limit, offset, sort_by,
                                sort_order) -> list[dict]:
        order = _order(sort_by, sort_order, _ASSISTANT_SORT, "created_at")
        rows = await self._read(lambda c: self._assistants(c, graph_id, name, metadata, order))
        return _page(rows, limit, offset)

    async def count_assistants(self, *, graph_id, name, metadata) -> int:
        rows = await self._read(
            lambda c: self._assistants(c, graph_id, name, metadata, "created_at")
        )
        return len(rows)

    async def assistant_versions(self, assistant_id, *, metadata, limit, offset) -> list[dict]:
        def go(conn: sqlite3.Connection) -> list[dict]:
            rows = conn.execute(
                "SELECT assistant_id, graph_id, name, description, config, context, metadata, "
                "version, created_at, created_at FROM server_assistant_versions "
                "WHERE assistant_id = ? ORDER BY version DESC",
                (assistant_id,),
            ).fetchall()
            out = []
            for row in rows:
                rec = _assistant(row)
                rec.pop("updated_at")
                if matches(rec["metadata"], metadata):
                    out.append(rec)
            return out

        return _page(await self._read(go), limit, offset)

    async def set_assistant_version(self, assistant_id: str, version: int) -> dict | None:
        def go(conn: sqlite3.Connection) -> dict | None:
            row = conn.execute(
                "SELECT assistant_id, graph_id, name, description, config, context, metadata, "
                "version, created_at, created_at FROM server_assistant_versions "
                "WHERE assistant_id = ? AND version = ?",
                (assistant_id, version),
            ).fetchone()
            if row is None:
                return None
            rec = _assistant(row)
            now = now_iso()
            self._assistant_rows.pop(assistant_id, None)
            conn.execute(
                "UPDATE server_assistants SET graph_id=?, name=?, description=?, config=?, "
                "context=?, metadata=?, version=?, updated_at=? WHERE assistant_id=?",
                (rec["graph_id"], rec["name"], rec.get("description"), _j(rec["config"]),
                 _j(rec["context"]), _j(rec["metadata"]), rec["version"], now, assistant_id),
            )
            row = conn.execute(
                f"SELECT {_ASSISTANT_COLS} FROM server_assistants WHERE assistant_id = ?",
                (assistant_id,),
            ).fetchone()
            return _assistant(row)

        return await self._write(go)

    # -- threads -----------------------------------------------------------------------

    async def create_thread(self, record: dict[str, Any], *, if_exists: str) -> dict:
        def go(conn: sqlite3.Connection) -> dict:
            row = conn.execute(
                f"SELECT {_THREAD_COLS} FROM server_threads WHERE thread_id = ?",
                (record["thread_id"],),
            ).fetchone()
            if row is not None:
                if if_exists == "do_nothing":
                    return _thread(row)
                raise Conflict(f"Thread {record['thread_id']} already exists.")
            self._insert_thread(conn, record)
            return record

        return await self._write(go)

    @staticmethod
    def _insert_thread(conn: sqlite3.Connection, record: dict[str, Any]) -> None:
        conn.execute(
            f"INSERT INTO server_threads ({_THREAD_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (record["thread_id"], record["created_at"], record["updated_at"],
             record["state_updated_at"], _j(record["metadata"]), record["status"],
             _j(record.get("config") or {}),
             None if record.get("values") is None else _j(record["values"]),
             None if "interrupts" not in record else _j(record["interrupts"]),
             None if record.get("error") is None else _j(record["error"])),
        )

    async def get_thread(self, thread_id: str, *, values: bool = True) -> dict | None:
        cols = _THREAD_COLS if values else THREAD_COLS_WITHOUT_VALUES

        def go(conn: sqlite3.Connection) -> dict | None:
            row = conn.execute(
                f"SELECT {cols} FROM server_threads WHERE thread_id = ?", (thread_id,)
            ).fetchone()
            return None if row is None else _thread(row)

        return await self._read(go)

    @staticmethod
    def _update_thread(conn: sqlite3.Connection, thread_id: str, fields: dict) -> dict | None:
        row = conn.execute(
            f"SELECT {_THREAD_COLS} FROM server_threads WHERE thread_id = ?", (thread_id,)
        ).fetchone()
        if row is None:
            return None
        rec = merge_thread(_thread(row), fields)
        conn.execute(
            'UPDATE server_threads SET updated_at=?, state_updated_at=?, metadata=?, status=?, '
            'config=?, "values"=?, interrupts=?, error=? WHERE thread_id=?',
            (*thread_values(rec), thread_id),
        )
        return public_thread(rec)

    async def update_thread(self, thread_id: str, **fields: Any) -> dict | None:
        return await self._write(lambda c: self._update_thread(c, thread_id, fields))

    async def delete_thread(self, thread_id: str) -> bool:
        def go(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM server_threads WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM server_runs WHERE thread_id = ?", (thread_id,))
            conn.execute("DELETE FROM server_thread_ttl WHERE thread_id = ?", (thread_id,))
            return cur.rowcount > 0

        found = await self._write(go)
        if found:
            await self._call(self.checkpointer.delete_thread, thread_id)
        return found

    def _threads(self, conn: sqlite3.Connection, ids, status, order: str, page: ThreadPage
                 ) -> list[dict]:
        """``page`` filled from the threads of ``ids`` / ``status`` in ``order`` (and
        the metadata strings the database can compare, ``string_equalities``; the
        pieces of text their values must hold, ``value_needles``), read only
        as far as it needs (one statement: one snapshot)."""
        sql = f"SELECT {_THREAD_COLS} FROM server_threads WHERE 1=1"
        strings, args = _metadata_strings(page.metadata)
        sql += strings
        for needle in value_needles(page.values):
            sql += ' AND instr("values", ?) > 0'
            args.append(needle)
        if status is not None:
            statuses = statuses_of(status)
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args.extend(statuses)
        if ids:
            sql += f" AND thread_id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        sql += f" ORDER BY {order}"
        window = page.window()
        if window is not None:
            limit, offset = window
            sql += " LIMIT ? OFFSET ?"
            args += [-1 if limit is None else limit, offset]
        page.add(conn.execute(sql, args))
        return page.rows

    async def pending_threads(self, metadata: dict[str, Any] | None,
                              ids: Collection[str] | None = None) -> list[dict]:
        def go(conn: sqlite3.Connection) -> list[dict]:
            among, args = "", list(ids or ())
            if ids is not None:
                among = " AND thread_id IN (SELECT value FROM json_each(?))"
                args = [json.dumps(args)]
            strings, compared = _metadata_strings(metadata)  # (a reviewer's own threads)
            among += strings
            args += compared
            rows = conn.execute(
                # (named: SQLite's planner would rather read every busy and failed
                # thread by the status index)
                f"SELECT {PENDING_THREAD_COLS} FROM server_threads INDEXED BY "
                f"server_threads_pending WHERE ({PENDING_THREADS}){among} "
                "ORDER BY created_at DESC", args
            )
            return [r for r in map(_thread, rows) if matches(r["metadata"], metadata or {})]

        return await self._read(go)

    async def pending_thread_versions(self) -> dict[str, str]:
        def go(conn: sqlite3.Connection) -> dict[str, str]:
            return {tid: thread_version(at, status) for tid, at, status in conn.execute(
                "SELECT thread_id, updated_at, status FROM server_threads INDEXED BY "
                f"server_threads_pending WHERE {PENDING_THREADS}")}

        return await self._read(go)

    async def search_threads(self, *, ids, metadata, values, status, limit, offset, sort_by,
                             sort_order) -> list[dict]:
        order = _order(sort_by, sort_order, _THREAD_SORT, "created_at")
        page = ThreadPage(metadata, values, limit, offset)
        return await self._read(lambda c: self._threads(c, ids, status, order, page))

    async def count_threads(self, *, metadata, values, status) -> int:
        if not metadata and not values:  # counted by the database
            def count(conn: sqlite3.Connection) -> int:
                sql, args = "SELECT count(*) FROM server_threads", []
                if status is not None:
                    statuses = statuses_of(status)
                    sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
                    args = statuses
                return int(conn.execute(sql, args).fetchone()[0])

            return await self._read(count)
        page = ThreadPage(metadata, values, -1, 0)
        return len(await self._read(lambda c: self._threads(c, None, status, "created_at",
                                                            page)))

    # -- runs --------------------------------------------------------------------------

    async def create_run(
        self, record: dict[str, Any], *, multitask_strategy: str,
        thread_metadata: tuple[dict[str, Any], dict[str, Any]] | None = None,
    ) -> tuple[dict, list[dict]]:
        def go(conn: sqlite3.Connection) -> tuple[dict, list[dict]]:
            active = [
                _run(r) for r in conn.execute(
                    f"SELECT {_RUN_COLS} FROM server_runs WHERE thread_id = ? AND status IN "
                    "('pending', 'running') ORDER BY seq",
                    (record["thread_id"],),
                )
            ]
            if active and multitask_strategy == "reject":
                raise Conflict(
                    f"Thread {record['thread_id']} is already running a task (run "
                    f"{active[0]['run_id']}). Wait for it to finish, or choose a different "
                    "multitask strategy (interrupt, rollback, enqueue)."
                )
            to_cancel = active if multitask_strategy in ("interrupt", "rollback") else []
            conn.execute(
                "INSERT INTO server_runs (run_id, thread_id, assistant_id, created_at, "
                "updated_at, status, metadata, kwargs, multitask_strategy, run_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (record["run_id"], record["thread_id"], record["assistant_id"],
                 record["created_at"], record["updated_at"], "pending",
                 _j(record["metadata"]), _j(record["kwargs"]), multitask_strategy,
                 record.get("run_at", 0.0)),
            )
            conn.execute(
                "UPDATE server_threads SET status = 'busy', updated_at = ? WHERE thread_id = ?",
                (record["updated_at"], record["thread_id"]),
            )
            if thread_metadata is not None:  # (in this transaction: nothing in between)
                self._update_thread(conn, record["thread_id"],
                                    {"metadata": thread_metadata[1]})
            return {**record, "status": "pending", "multitask_strategy": multitask_strategy,
                    "attempt": 0}, to_cancel

        result = await self._write(go)
        self._streams.open(record["run_id"])
        self._work.set()
        return result

    async def get_run(self, run_id: str, thread_id: str | None = None) -> dict | None:
        def go(conn: sqlite3.Connection) -> dict | None:
            row = conn.execute(
                f"SELECT {_RUN_COLS} FROM server_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                return None
            run = _run(row)
            if thread_id is not None and run["thread_id"] != thread_id:
                return None
            return run

        return await self._read(go)

    async def list_runs(self, thread_id, *, limit, offset, status) -> list[dict]:
        def go(conn: sqlite3.Connection) -> list[dict]:
            sql = f"SELECT {_RUN_COLS} FROM server_runs WHERE thread_id = ?"
            args: list[Any] = [thread_id]
            if status is not None:
                sql += " AND status = ?"
                args.append(status)
            sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"
            args += [limit, offset]
            return [_run(r) for r in conn.execute(sql, args)]

        return await self._read(go)

    async def list_active_runs(self, thread_id: str | None = None) -> list[dict]:
        def go(conn: sqlite3.Connection) -> list[dict]:
            sql = f"SELECT {_RUN_COLS} FROM server_runs WHERE status IN ('pending', 'running')"
            args: list[Any] = []
            if thread_id is not None:
                sql += " AND thread_id = ?"
                args.append(thread_id)
            return [_run(r) for r in conn.execute(sql + " ORDER BY seq", args)]

        return await self._read(go)

    async def delete_run(self, run_id: str) -> bool:
        def go(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM server_runs WHERE run_id = ?", (run_id,)).rowcount > 0

        found = await self._write(go)
        if found:
            self._wake_run(run_id)
            self._work.set()  # a run queued behind it may start
        return found

    async def claim_run(self, worker_id: str, lease_seconds: float,
                        graph_ids: Collection[str] | None = None) -> dict | None:
        runs = await self.claim_runs(worker_id, lease_seconds, 1, graph_ids)
        return runs[0] if runs else None

    async def claim_runs(self, worker_id: str, lease_seconds: float, limit: int,
                         graph_ids: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` runs in one transaction - none taken when a read finds none
        to take (most claims, as a worker looks again whenever a run ends): no write
        lock then. At most one run a thread: a thread's later pending runs wait for
        its earlier ones."""

        served, served_args = ("", ()) if graph_ids is None else (
            " AND NOT EXISTS (SELECT 1 FROM server_assistants a WHERE a.assistant_id = "
            "r.assistant_id AND a.graph_id NOT IN (SELECT value FROM json_each(?)))",
            (json.dumps(list(graph_ids)),))

        def claimable(conn: sqlite3.Connection, now: float) -> list[tuple]:
            return conn.execute(
                f"SELECT {_RUN_COLS} FROM server_runs r WHERE status = 'pending' "
                "AND run_at <= ? AND NOT EXISTS (SELECT 1 FROM server_runs o WHERE "
                "o.thread_id = r.thread_id AND (o.status = 'running' OR (o.status = 'pending' "
                f"AND o.seq < r.seq))){served} ORDER BY seq LIMIT ?",
                (now, *served_args, limit),
            ).fetchall()

        def go(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            now = time.time()
            stamp = now_iso()
            runs = [_run(row) for row in claimable(conn, now)]
            for run in runs:
                conn.execute(
                    "UPDATE server_runs SET status = 'running', worker_id = ?, "
                    "lease_expires_at = ?, attempt = attempt + 1, updated_at = ? "
                    "WHERE run_id = ?",
                    (worker_id, now + lease_seconds, stamp, run["run_id"]),
                )
                run.update(status="running", updated_at=stamp, attempt=run["attempt"] + 1)
            return runs

        if not await self._read(lambda conn: claimable(conn, time.time())):
            return []
        return await self._write(go)  # (read again: another process may have claimed)

    async def renew_leases(self, run_ids: Sequence[str], worker_id: str,
                           lease_seconds: float) -> set[str]:
        if not run_ids:
            return set()

        def go(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute(
                "UPDATE server_runs SET lease_expires_at = ? WHERE run_id IN (SELECT value "
                "FROM json_each(?)) AND worker_id = ? AND status = 'running' RETURNING run_id",
                (time.time() + lease_seconds, json.dumps(list(run_ids)), worker_id),
            ).fetchall()
            return {row[0] for row in rows}

        return await self._write(go)

    async def release_run(self, run_id: str, worker_id: str, delay_seconds: float) -> bool:
        def go(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE server_runs SET status = 'pending', worker_id = NULL, "
                "lease_expires_at = NULL, run_at = ?, updated_at = ? WHERE run_id = ? "
                "AND worker_id = ? AND status = 'running'",
                (time.time() + max(0.0, delay_seconds), now_iso(), run_id, worker_id),
            )
            return cur.rowcount > 0

        released = await self._write(go)
        if released:
            self._work.set()
        return released

    async def finish_run(self, run_id: str, status: str, *, thread: dict[str, Any] | None,
                         worker_id: str | None = None,
                         webhook: RunWebhook | None = None) -> dict | None:
        fields = dict(thread or {})
        held, held_args = ("", ()) if worker_id is None else (" AND worker_id = ?", (worker_id,))

        def go(conn: sqlite3.Connection) -> dict | None:
            # two statements, the thread not read first (as PostgreSQL's end_run): the
            # run ended, then the thread's fields, ``busy`` while another of its runs
            # is active (and only that, when there are no fields)
            stamp = now_iso()
            rows = conn.execute(
                "UPDATE server_runs SET status = ?, updated_at = ?, worker_id = NULL, "
                f"lease_expires_at = NULL WHERE run_id = ?{held} RETURNING {_RUN_COLS}",
                (status, stamp, run_id, *held_args),
            ).fetchall()
            if not rows:
                return None
            run = _run(rows[0])
            sets, args = ended_thread_sets(fields, stamp, "?")
            own_status = "?" if "status" in fields else "status"
            busy = (
                "EXISTS (SELECT 1 FROM server_runs WHERE thread_id = ? AND run_id != ? "
                "AND status IN ('pending', 'running'))"
            )
            conn.execute(
                f"UPDATE server_threads SET {', '.join(sets)}, status = CASE WHEN {busy} "
                f"THEN 'busy' ELSE {own_status} END WHERE thread_id = ? AND (? OR {busy})",
                (*args, run["thread_id"], run_id,
                 *([fields["status"]] if "status" in fields else []), run["thread_id"],
                 bool(fields), run["thread_id"], run_id),
            )
            delivery = None if webhook is None else webhook(run)
            if delivery is not None:
                _queue_webhook(conn, *delivery)
            return run

        run = await self._write(go)
        self._wake_run(run_id)
        self._work.set()
        return run

    async def request_cancel(self, run_ids: Sequence[str], action: CancelAction) -> list[dict]:
        def go(conn: sqlite3.Connection) -> list[dict]:
            found = []
            for run_id in run_ids:
                row = conn.execute(
                    f"SELECT {_RUN_COLS} FROM server_runs WHERE run_id = ?", (run_id,)
                ).fetchone()
                if row is None:
                    continue
                run = _run(row)
                found.append(run)
                if run["status"] == "pending":  # never started: ends here and now
                    if action == "rollback":
                        conn.execute("DELETE FROM server_runs WHERE run_id = ?", (run_id,))
                    else:
                        conn.execute(
                            "UPDATE server_runs SET status = 'interrupted', cancel_action = ?, "
                            "updated_at = ? WHERE run_id = ?",
                            (action, now_iso(), run_id),
                        )
                elif run["status"] == "running":
                    conn.execute(
                        "UPDATE server_runs SET cancel_action = ? WHERE run_id = ?",
                        (action, run_id),
                    )
            return found

        runs = await self._write(go)
        for run in runs:
            if run["status"] == "pending":
                self._wake_run(run["run_id"])
            if run["status"] != "running":
                continue
            run["cancel_reason"] = action
            for callback in list(self._cancel_callbacks):
                result = callback(run["run_id"], action)
                if asyncio.iscoroutine(result):
                    await result
        return runs

    async def requeue_expired(self) -> list[str]:
        def go(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT run_id FROM server_runs WHERE status = 'running' "
                "AND lease_expires_at < ?",
                (time.time(),),
            ).fetchall()
            ids = [r[0] for r in rows]
            for run_id in ids:
                conn.execute(
                    "UPDATE server_runs SET status = 'pending', worker_id = NULL, "
                    "lease_expires_at = NULL WHERE run_id = ?",
                    (run_id,),
                )
            return ids

        ids = await self._write(go)
        if ids:
            self._work.set()
        return ids

    async def wait_for_work(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            pass
        self._work.clear()

    def _wake_run(self, run_id: str) -> None:
        for fut in self._run_waiters.pop(run_id, []):
            if not fut.done():
                fut.set_result(None)

    async def wait_run(self, run_id: str, timeout: float | None) -> dict | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            fut = asyncio.get_running_loop().create_future()
            self._run_waiters.setdefault(run_id, []).append(fut)
            run = await self.get_run(run_id)
            if run is None or run["status"] not in RUN_ACTIVE:
                self._run_waiters.get(run_id, []).remove(fut) if fut in self._run_waiters.get(
                    run_id, []) else None
                return run
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(fut, left)
            except TimeoutError:
                return await self.get_run(run_id)

    async def watch_cancellations(self, callback: CancelCallback) -> None:
        self._cancel_callbacks.append(callback)

    async def lead(self, duty: str) -> bool:
        return True  # one process serves the file

    # -- webhooks ----------------------------------------------------------------------

    async def queue_webhook(self, url: str, body: bytes, name: str) -> None:
        await self._write(lambda conn: _queue_webhook(conn, url, body, name))

    async def take_webhooks(self, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        def go(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            now = time.time()
            rows = conn.execute(
                "SELECT id, url, body, name, attempts FROM server_webhooks WHERE next_at <= ? "
                "ORDER BY next_at LIMIT ?", (now, limit)).fetchall()
            conn.executemany("UPDATE server_webhooks SET next_at = ? WHERE id = ?",
                             [(now + lease_seconds, row[0]) for row in rows])
            return [{"id": r[0], "url": r[1], "body": bytes(r[2]), "name": r[3],
                     "attempts": r[4]} for r in rows]

        return await self._write(go)

    async def end_webhook(self, webhook_id: int, *, retry_at: float | None = None,
                          error: str | None = None) -> None:
        if retry_at is None:
            await self._write(lambda conn: conn.execute(
                "DELETE FROM server_webhooks WHERE id = ?", (webhook_id,)))
            return
        await self._write(lambda conn: conn.execute(
            "UPDATE server_webhooks SET next_at = ?, attempts = attempts + 1, error = ? "
            "WHERE id = ?", (retry_at, error, webhook_id)))

    # -- streams -----------------------------------------------------------------------

    async def publish(self, run_id: str, event: str, data: bytes, *, keep: bool) -> str:
        return self._streams.publish(run_id, event, data, keep=keep)

    async def close_stream(self, run_id: str) -> None:
        self._streams.close(run_id)

    def subscribe(self, run_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        async def finished() -> bool:
            run = await self.get_run(run_id)
            return run is None or run["status"] not in RUN_ACTIVE

        return self._streams.subscribe(run_id, after=after, is_finished=finished)

    # -- crons -------------------------------------------------------------------------

    async def create_cron(self, record: dict[str, Any]) -> dict:
        def go(conn: sqlite3.Connection) -> dict:
            conn.execute(
                f"INSERT INTO server_crons ({_CRON_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (record["cron_id"], record.get("assistant_id"), record.get("thread_id"),
                 record.get("user_id"), record["schedule"], record.get("timezone"),
                 record.get("end_time"), _j(record["payload"]), _j(record["metadata"]),
                 int(record["enabled"]), record.get("on_run_completed"),
                 record.get("next_run_date"), record["created_at"], record["updated_at"]),
            )
            return record

        return await self._write(go)

    async def get_cron(self, cron_id: str) -> dict | None:
        def go(conn: sqlite3.Connection) -> dict | None:
            row = conn.execute(
                f"SELECT {_CRON_COLS} FROM server_crons WHERE cron_id = ?", (cron_id,)
            ).fetchone()
            return None if row is None else _cron(row)

        return await self._read(go)

    async def update_cron(self, cron_id: str, **fields: Any) -> dict | None:
        def go(conn: sqlite3.Connection) -> dict | None:
            row = conn.execute(
                f"SELECT {_CRON_COLS} FROM server_crons WHERE cron_id = ?", (cron_id,)
            ).fetchone()
            if row is None:
                return None
            rec = {**_cron(row), **fields, "updated_at": now_iso()}
            conn.execute("DELETE FROM server_crons WHERE cron_id = ?", (cron_id,))
            conn.execute(
                f"INSERT INTO server_crons ({_CRON_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec["cron_id"], rec.get("assistant_id"), rec.get("thread_id"),
                 rec.get("user_id"), rec["schedule"], rec.get("timezone"), rec.get("end_time"),
                 _j(rec["payload"]), _j(rec["metadata"]), int(rec["enabled"]),
                 rec.get("on_run_completed"), rec.get("next_run_date"), rec["created_at"],
                 rec["updated_at"]),
            )
            return rec

        return await self._write(go)

    async def delete_cron(self, cron_id: str) -> bool:
        return await self._write(
            lambda c: c.execute("DELETE FROM server_crons WHERE cron_id = ?", (cron_id,)).rowcount
            > 0
        )

    async def search_crons(self, *, assistant_id, thread_id, enabled, limit, offset, sort_by,
                           sort_order) -> list[dict]:
        def go(conn: sqlite3.Connection) -> list[dict]:
            sql = f"SELECT {_CRON_COLS} FROM server_crons WHERE 1=1"
            args: list[Any] = []
            if assistant_id is not None:
                sql += " AND assistant_id = ?"
                args.append(assistant_id)
            if thread_id is not None:
                sql += " AND thread_id = ?"
                args.append(thread_id)
            if enabled is not None:
                sql += " AND enabled = ?"
                args.append(int(enabled))
            order = _order(sort_by, sort_order, _CRON_SORT, "created_at")
            sql += f" ORDER BY {order} LIMIT ? OFFSET ?"
            args += [limit, offset]
            return [_cron(r) for r in conn.execute(sql, args)]

        return await self._read(go)

    async def set_thread_ttl(self, thread_id: str, expires_at: float | None,
                             strategy: str = "delete") -> None:
        def go(conn: sqlite3.Connection) -> None:
            if expires_at is None:
                conn.execute("DELETE FROM server_thread_ttl WHERE thread_id = ?", (thread_id,))
                return
            conn.execute(
                "INSERT INTO server_thread_ttl (thread_id, strategy, expires_at) VALUES "
                "(?,?,?) ON CONFLICT (thread_id) DO UPDATE SET strategy = excluded.strategy, "
                "expires_at = excluded.expires_at",
                (thread_id, strategy, expires_at),
            )

        await self._write(go)

    async def expired_threads(self, now: float) -> list[tuple[str, str]]:
        def go(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return [tuple(r) for r in conn.execute(  # type: ignore[misc]
                "SELECT thread_id, strategy FROM server_thread_ttl WHERE expires_at <= ? "
                "ORDER BY expires_at", (now,),
            )]

        return await self._read(go)

    async def due_crons(self, now_iso: str) -> list[dict]:
        def go(conn: sqlite3.Connection) -> list[dict]:
            return [
                _cron(r) for r in conn.execute(
                    f"SELECT {_CRON_COLS} FROM server_crons WHERE enabled = 1 AND "
                    "next_run_date IS NOT NULL AND next_run_date <= ?",
                    (now_iso,),
                )
            ]

        return await self._read(go)


def _queue_webhook(conn: sqlite3.Connection, url: str, body: bytes, name: str) -> None:
    """Keep a webhook delivery, due now (``queue_webhook``), in ``conn``'s transaction."""
    conn.execute("INSERT INTO server_webhooks (url, body, name, next_at, created_at) "
                 "VALUES (?,?,?,?,?)", (url, body, name, time.time(), now_iso()))
