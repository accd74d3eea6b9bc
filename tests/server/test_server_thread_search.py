"""``threads.search`` pages at the storage (``Storage.search_threads``): a page near the
front reads its own rows - by index, in order, the query paging itself when no filter is
applied in Python, else reading on only until the page is full - where it decoded every
thread of the table and sliced (10,000 threads: ~130-200 ms a search, on the SQLite
server's event loop). The pages are the same as before, for every filter.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from threadloom.server.records import new_id

STATUSES = ("idle", "error", "interrupted", "busy")
TEAMS = ("a", "b", "c")
N = 60


def _records() -> list[dict[str, Any]]:
    """``N`` threads, oldest first: teams and statuses cycling, every fifth flagged in
    its values."""
    out = []
    for i in range(N):
        out.append({
            "thread_id": new_id(),
            "created_at": f"2026-12-05T00:{i // 60:02d}:{i % 60:02d}+00:00",
            "metadata": {"team": TEAMS[i % 3], "n": i, "tags": ["x", f"t{i % 4}"],
                         "a.b": "dotted", "code": str(i % 7) if i % 2 else i % 7,
                         "owner": {"team": TEAMS[i % 3]} if i % 5 == 0 else TEAMS[i % 3]},
            "status": STATUSES[i % 4],
            "values": {"flag": i % 5 == 0, "i": i},
        })
    return out


async def _fill(storage: Any, records: list[dict[str, Any]]) -> None:
    for r in records:
        stamp = r["created_at"]
        await storage.create_thread({
            "thread_id": r["thread_id"], "created_at": stamp, "updated_at": stamp,
            "state_updated_at": stamp, "metadata": r["metadata"], "status": "idle",
            "config": {}, "values": None, "interrupts": None, "error": None,
        }, if_exists="raise")
        await storage.update_thread(r["thread_id"], status=r["status"], values=r["values"])


def _expected(records: list[dict[str, Any]], *, status: Any, metadata: Any, values: Any,
              limit: int, offset: int, order: str) -> list[str]:
    from threadloom.server.records import matches

    statuses = None if status is None else ([status] if isinstance(status, str) else status)
    kept = [r for r in records
            if (statuses is None or r["status"] in statuses)
            and matches(r["metadata"], metadata or {})
            and (not values or matches(r["values"], values))]
    kept.sort(key=lambda r: r["created_at"], reverse=order == "desc")
    kept = kept[offset:] if limit < 0 else kept[offset:offset + limit]
    return [r["thread_id"] for r in kept]


CASES = [
    # (status, metadata, values, limit, offset, order)
    (None, None, None, 10, 0, "desc"),
    (None, None, None, 10, 55, "desc"),
    (None, None, None, 0, 0, "desc"),
    (None, None, None, -1, 7, "asc"),
    ("error", None, None, 5, 3, "desc"),
    (("interrupted", "busy"), None, None, 100, 0, "asc"),
    (None, {"team": "b"}, None, 4, 2, "desc"),
    (None, {"team": "b"}, None, -1, 0, "desc"),
    (None, {"tags": {"$contains": "t1"}}, None, 3, 1, "asc"),
    ("idle", {"team": "a"}, None, 10, 0, "desc"),
    (None, None, {"flag": True}, 5, 0, "desc"),
    (None, {"team": "c"}, {"flag": True}, 10, 1, "asc"),
    (None, {"team": "nobody"}, None, 10, 0, "desc"),
    (None, {"team": "a"}, None, 10, 500, "desc"),
    # compared by the database first where it can (a plain key, a string), the rest in
    # Python: strings against numbers, a dict holding the string, dotted keys
    (None, {"code": "3"}, None, -1, 0, "desc"),
    (None, {"code": 3}, None, -1, 0, "desc"),
    (None, {"owner": "b"}, None, -1, 0, "asc"),
    (None, {"owner": {"team": "b"}}, None, -1, 0, "asc"),
    (None, {"a.b": "dotted", "team": "c"}, None, 4, 1, "desc"),
    ("error", {"team": "b", "tags": {"$contains": "t3"}}, None, 10, 0, "desc"),
    (None, {"team": "b", "n": {"$in": [1, 4, 7]}}, None, 10, 0, "desc"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def storage_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        from threadloom.server.storage.sqlite import SqliteStorage

        return lambda: SqliteStorage(str(tmp_path / "search.db"))
    from threadloom.server.storage.postgres import PostgresStorage

    url = request.getfixturevalue("fresh_postgres_database")
    return lambda: PostgresStorage(url, pool_size=2)


def test_search_pages_are_the_filtered_threads_in_order(storage_factory: Any) -> None:
    """Every combination of status, metadata and values filters, limit, offset and
    order gives the page a filter of all threads gives, and ``count_threads`` their
    number."""
    records = _records()

    async def scenario() -> None:
        storage = storage_factory()
        await storage.setup()
        try:
            await _fill(storage, records)
            for status, metadata, values, limit, offset, order in CASES:
                got = await storage.search_threads(
                    ids=None, metadata=metadata, values=values, status=status, limit=limit,
                    offset=offset, sort_by="created_at", sort_order=order)
                want = _expected(records, status=status, metadata=metadata, values=values,
                                 limit=limit, offset=offset, order=order)
                case = (status, metadata, values, limit, offset, order)
                assert [t["thread_id"] for t in got] == want, case
                assert all(t["values"] == r["values"] for t in got for r in records
                           if r["thread_id"] == t["thread_id"]), case
                count = await storage.count_threads(metadata=metadata, values=values,
                                                    status=status)
                assert count == len(_expected(records, status=status, metadata=metadata,
                                              values=values, limit=-1, offset=0,
                                              order=order)), case
            some = [records[5]["thread_id"], records[17]["thread_id"]]
            got = await storage.search_threads(
                ids=some, metadata=None, values=None, status=None, limit=1, offset=1,
                sort_by=None, sort_order=None)
            assert [t["thread_id"] for t in got] == [records[5]["thread_id"]]
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_sqlite_search_pages_read_an_index_in_order(tmp_path: Path) -> None:
    """A page of all threads, or of one status, is read off an index in the search's
    order, the query paging itself (``LIMIT``): no sort of every thread."""
    from threadloom.server.storage.sqlite import SqliteStorage

    path = str(tmp_path / "plan.db")
    statements: list[str] = []

    async def scenario() -> None:
        storage = SqliteStorage(path)
        await storage.setup()
        try:
            await _fill(storage, _records())
            storage._conn.set_trace_callback(statements.append)
            for status in (None, "error"):
                await storage.search_threads(
                    ids=None, metadata=None, values=None, status=status, limit=10,
                    offset=0, sort_by=None, sort_order=None)
        finally:
            await storage.close()

    asyncio.run(scenario())
    searches = [s for s in statements if "FROM server_threads" in s]
    assert len(searches) == 2 and all("LIMIT 10 OFFSET 0" in s for s in searches), searches
    with sqlite3.connect(path) as conn:
        for statement, index in zip(searches, ("server_threads_created",
                                               "server_threads_status_created"), strict=True):
            plan = " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + statement))
            assert index in plan and "TEMP B-TREE" not in plan, plan


def test_a_filtered_search_reads_on_past_batches_until_its_page_is_full(
    storage_factory: Any,
) -> None:
    """A metadata filter that only the oldest threads pass: the page is found after
    reading past hundreds of rows (on PostgreSQL, several batches of the server-side
    cursor), and a page past the last match is empty."""
    async def scenario() -> None:
        storage = storage_factory()
        await storage.setup()
        try:
            records = []
            for i in range(450):
                stamp = f"2026-12-05T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}+00:00"
                records.append({"thread_id": new_id(), "created_at": stamp,
                                "metadata": {"old": i < 3, "i": i}, "status": "idle",
                                "values": {"i": i}})
            await _fill(storage, records)
            got = await storage.search_threads(
                ids=None, metadata={"old": True}, values=None, status=None, limit=2,
                offset=1, sort_by=None, sort_order=None)
            assert [t["metadata"]["i"] for t in got] == [1, 0]
            assert await storage.search_threads(
                ids=None, metadata={"old": True}, values=None, status=None, limit=2,
                offset=3, sort_by=None, sort_order=None) == []
            assert await storage.count_threads(metadata={"old": True}, values=None,
                                               status="idle") == 3
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_sqlite_compares_metadata_strings_before_decoding(tmp_path: Path) -> None:
    """On SQLite a metadata filter's plain keys wanting strings (an auth handler's
    owner, say) are compared by the database (``json_extract``), the rest of the filter
    in Python; keys that are not plain names are left to Python alone."""
    from threadloom.server.storage.sqlite import SqliteStorage

    statements: list[str] = []

    async def scenario() -> list[str]:
        storage = SqliteStorage(str(tmp_path / "json.db"))
        await storage.setup()
        try:
            records = _records()
            await _fill(storage, records)
            storage._conn.set_trace_callback(statements.append)
            got = await storage.search_threads(
                ids=None, metadata={"team": "b", "a.b": "dotted", "n": {"$in": [1, 4, 7]}},
                values=None, status=None, limit=10, offset=0, sort_by=None,
                sort_order=None)
            return [t["metadata"]["n"] for t in got]
        finally:
            await storage.close()

    assert asyncio.run(scenario()) == [7, 4, 1]
    [search] = [s for s in statements if "FROM server_threads" in s]
    assert "json_extract(metadata, '$.\"team\"') = 'b'" in search, search
    assert "a.b" not in search, search
