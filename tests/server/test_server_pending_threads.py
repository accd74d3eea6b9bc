"""What the approval feed reads every second (``Storage.pending_threads``): the threads
that may have something waiting for a person, from an index of those alone - not every
busy or failed thread the server ever had (10,000 failed threads cost ~200 ms a look,
on the event loop, before).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from threadloom.server.records import new_id, now_iso
from threadloom.server.services.approvals import pending_items

INTERRUPT = {"id": "i1", "value": {"question": "ok?"}}

#: (name, status, interrupts, metadata) of each thread, oldest first; the pending ones
#: are those ``pending_items`` finds something on
THREADS = [
    ("interrupted, static pause", "interrupted", {}, {"team": "a"}),
    ("interrupted, asking", "interrupted", {"task": [INTERRUPT]}, {"team": "b"}),
    ("busy, still asking", "busy", {"task": [INTERRUPT]}, {"team": "a"}),
    ("busy", "busy", {}, {"team": "a"}),
    ("failed, still asking", "error", {"task": [INTERRUPT]}, {"team": "a"}),
    ("failed", "error", {}, {"team": "a"}),
    ("failed, never ran", "error", None, {"team": "a"}),
    ("idle, old interrupts", "idle", {"task": [INTERRUPT]}, {"team": "a"}),
    ("idle", "idle", {}, {"team": "a"}),
]
PENDING = ["interrupted, static pause", "interrupted, asking", "busy, still asking",
           "failed, still asking"]


def _storage(kind: str, tmp_path: Path, postgres_url: str | None) -> Any:
    if kind == "sqlite":
        from threadloom.server.storage.sqlite import SqliteStorage

        return SqliteStorage(str(tmp_path / "pending.db"))
    from threadloom.server.storage.postgres import PostgresStorage

    assert postgres_url is not None
    return PostgresStorage(postgres_url, pool_size=2)


async def _fill(storage: Any) -> dict[str, str]:
    """The ``THREADS``, made through the storage; their ids by name."""
    ids: dict[str, str] = {}
    for i, (name, status, interrupts, metadata) in enumerate(THREADS):
        thread_id = new_id()
        stamp = f"2026-12-05T00:00:{i:02d}+00:00"
        await storage.create_thread({
            "thread_id": thread_id, "created_at": stamp, "updated_at": stamp,
            "state_updated_at": stamp, "metadata": {**metadata, "name": name},
            "status": "idle", "config": {}, "values": None, "interrupts": None,
            "error": None,
        }, if_exists="raise")
        fields: dict[str, Any] = {"status": status}
        if interrupts is not None:
            fields["interrupts"] = interrupts
        await storage.update_thread(thread_id, **fields)
        ids[name] = thread_id
    return ids


@pytest.fixture(params=["sqlite", "postgres"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_pending_threads_are_those_a_person_may_have_something_on(
    storage_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Interrupted threads, and busy or failed ones still holding interrupts, newest
    first, filtered by metadata - exactly the threads the look by status (every
    interrupted, busy or failed thread read) found something on."""
    url = (request.getfixturevalue("fresh_postgres_database")
           if storage_kind == "postgres" else None)

    async def scenario() -> None:
        storage = _storage(storage_kind, tmp_path, url)
        await storage.setup()
        try:
            await _fill(storage)
            found = [t["metadata"]["name"] for t in await storage.pending_threads(None)]
            assert found == PENDING[::-1]
            # what the feed's look by status found (every thread of those statuses read)
            by_status = await storage.search_threads(
                ids=None, metadata=None, values=None, status=("interrupted", "error", "busy"),
                limit=-1, offset=0, sort_by=None, sort_order=None)
            assert {t["metadata"]["name"] for t in by_status if pending_items(t)} == set(
                PENDING)
            team_a = await storage.pending_threads({"team": "a"})
            assert [t["metadata"]["name"] for t in team_a] == [
                "failed, still asking", "busy, still asking", "interrupted, static pause"]
            # answered: the thread moves on and leaves the set
            thread_id = team_a[0]["thread_id"]
            await storage.update_thread(thread_id, status="idle", interrupts={})
            assert thread_id not in {t["thread_id"] for t in await storage.pending_threads(None)}
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_sqlite_pending_threads_read_their_index_alone(tmp_path: Path) -> None:
    """The statement ``pending_threads`` runs on SQLite searches the partial index of
    pending threads (in its order: no sort), not the status index over every busy and
    failed thread; a database made before the index gains it at ``setup``."""
    from threadloom.server.storage.sqlite import MIGRATIONS, SqliteStorage

    path = str(tmp_path / "plan.db")

    async def scenario() -> list[str]:
        storage = SqliteStorage(path)
        await storage.setup()
        statements: list[str] = []
        try:
            with sqlite3.connect(path) as conn:  # as a database of a version before it
                version = next(i for i, m in enumerate(MIGRATIONS)
                               if "server_threads_pending" in m[0])
                for name in ("server_threads_pending", "server_threads_created"):
                    conn.execute(f"DROP INDEX IF EXISTS {name}")
                conn.execute("DELETE FROM server_migrations WHERE v >= ?", (version,))
            await storage.close()
            storage = SqliteStorage(path)
            await storage.setup()
            await _fill(storage)
            storage._conn.set_trace_callback(statements.append)
            assert len(await storage.pending_threads(None)) == len(PENDING)
        finally:
            await storage.close()
        return [s for s in statements if "FROM server_threads" in s]

    [statement] = asyncio.run(scenario())
    with sqlite3.connect(path) as conn:
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement))
    assert "USING INDEX server_threads_pending" in plan, plan
    assert "TEMP B-TREE" not in plan and "server_threads_status" not in plan, plan


def test_postgres_pending_threads_read_their_index(fresh_postgres_database: str) -> None:
    """On PostgreSQL, among thousands of failed and idle threads, the statement reads
    the partial index of pending threads, not the table."""
    import psycopg

    from threadloom.server.storage.postgres import PostgresStorage
    from threadloom.server.storage.rows import PENDING_THREADS, THREAD_COLS

    async def setup() -> None:
        storage = PostgresStorage(fresh_postgres_database, pool_size=2)
        await storage.setup()
        await storage.close()

    asyncio.run(setup())
    stamp = now_iso()
    with psycopg.connect(fresh_postgres_database) as conn:
        conn.execute(
            "INSERT INTO server_threads (thread_id, created_at, updated_at, "
            "state_updated_at, metadata, status, config, \"values\", interrupts, error) "
            "SELECT 't' || i, %s, %s, %s, '{}', CASE WHEN i %% 1000 = 0 THEN 'interrupted' "
            "WHEN i %% 2 = 0 THEN 'error' ELSE 'idle' END, '{}', NULL, '{}', NULL "
            "FROM generate_series(1, 20000) AS i", (stamp, stamp, stamp))
        conn.execute("ANALYZE server_threads")
        plan = "\n".join(row[0] for row in conn.execute(
            f"EXPLAIN (COSTS OFF) SELECT {THREAD_COLS} FROM server_threads "
            f"WHERE {PENDING_THREADS} ORDER BY created_at DESC"))
        conn.rollback()
    assert "server_threads_pending" in plan, plan
    assert "Seq Scan on server_threads" not in plan, plan


def test_a_reviewers_pending_threads_are_narrowed_by_the_database(
    storage_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The inbox of a reviewer whose auth handler filters by owner: the database
    compares the owner (SQLite ``json_extract``, PostgreSQL the index of metadata), not
    Python after reading every pending thread; an operator it cannot say is still
    applied."""
    url = (request.getfixturevalue("fresh_postgres_database")
           if storage_kind == "postgres" else None)
    statements: list[str] = []
    sent_to_postgres: list[tuple[str, str]] = (
        request.getfixturevalue("sent_statements") if storage_kind == "postgres" else [])

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        storage = _storage(storage_kind, tmp_path, url)
        await storage.setup()
        try:
            for i in range(40):
                thread_id = new_id()
                stamp = f"2026-12-05T00:01:{i:02d}+00:00"
                await storage.create_thread({
                    "thread_id": thread_id, "created_at": stamp, "updated_at": stamp,
                    "state_updated_at": stamp, "metadata": {"owner": f"o{i % 8}", "n": i},
                    "status": "idle", "config": {}, "values": None, "interrupts": None,
                    "error": None}, if_exists="raise")
                await storage.update_thread(thread_id, status="interrupted",
                                            interrupts={"task": [INTERRUPT]})
            if storage_kind == "sqlite":
                storage._conn.set_trace_callback(statements.append)
            sent_to_postgres.clear()
            mine = await storage.pending_threads({"owner": "o3"})
            some = await storage.pending_threads({"owner": "o3", "n": {"$ne": 11}})
            statements.extend(sql for _, sql in sent_to_postgres)
            return ([t["metadata"]["owner"] for t in mine],
                    [t["metadata"]["n"] for t in some], list(statements))
        finally:
            await storage.close()

    owners, numbers, sent = asyncio.run(scenario())
    assert owners == ["o3"] * 5 and numbers == [35, 27, 19, 3]
    looks = [s for s in sent if "FROM server_threads" in s]
    assert len(looks) == 2, sent
    marker = "json_extract(metadata" if storage_kind == "sqlite" else "server_thread_metadata"
    assert all(marker in s for s in looks), looks
