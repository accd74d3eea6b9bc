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


def _stamp(i: int) -> str:
    return f"2026-12-05T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}+00:00"


def _records() -> list[dict[str, Any]]:
    """``N`` threads, oldest first: teams and statuses cycling, every fifth flagged in
    its values; then two of team "z" whose metadata holds what PostgreSQL's jsonb
    refuses (``\\u0000``) or writes as an escape (a control character)."""
    out = []
    for i in range(N):
        out.append({
            "thread_id": new_id(),
            "created_at": _stamp(i),
            "metadata": {"team": TEAMS[i % 3], "n": i, "tags": ["x", f"t{i % 4}"],
                         "a.b": "dotted", "code": str(i % 7) if i % 2 else i % 7,
                         "owner": {"team": TEAMS[i % 3]} if i % 5 == 0 else TEAMS[i % 3],
                         "flag": i % 5 == 0, "ratio": i % 3 / 2,
                         "nested": {"k": TEAMS[i % 3], "deep": {"n": i % 2}}},
            "status": STATUSES[i % 4],
            "values": {"flag": i % 5 == 0, "i": i, "note": f"n{i % 4}",
                       "items": [{"name": f"x{i % 3}"}, {"name": "all"}],
                       "quote": 'say "hi"' if i % 2 else "say hi"},
        })
    for i, note in ((N, "nul\u0000here"), (N + 1, "bell\x07")):
        out.append({"thread_id": new_id(), "created_at": _stamp(i), "status": "idle",
                    "metadata": {"team": "z", "note": note, "n": -i}, "values": {"i": i}})
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
    # what PostgreSQL asks its index of metadata first (``records.containment``) and
    # ``matches`` decides: numbers (3 is 3.0, True is not 1), lists, nested dicts,
    # operators inside them, a dict compared whole, metadata jsonb cannot hold
    (None, {"n": 3.0}, None, -1, 0, "desc"),
    (None, {"flag": 1}, None, -1, 0, "desc"),
    (None, {"flag": True, "ratio": 0.5}, None, -1, 0, "asc"),
    (None, {"tags": ["t1"]}, None, -1, 0, "desc"),
    (None, {"tags": ["t2", "x"], "team": {"$ne": "a"}}, None, 3, 1, "desc"),
    (None, {"nested": {"deep": {"n": 1}}}, None, 5, 0, "asc"),
    (None, {"nested": {"k": {"$ne": "a"}, "deep": {}}}, None, -1, 0, "desc"),
    (None, {"nested": {"$eq": {"k": "b", "deep": {"n": 0}}}}, None, -1, 0, "desc"),
    (None, {"owner": {"$eq": {"team": "b"}}, "code": {"$eq": 3}}, None, -1, 0, "desc"),
    (None, {"team": "z"}, None, -1, 0, "desc"),
    (None, {"note": "nul\u0000here"}, None, -1, 0, "desc"),
    (None, {"note": "bell\x07"}, None, -1, 0, "desc"),
    (None, {"note": "\ud800", "team": "z"}, None, -1, 0, "desc"),  # not UTF-8
    (None, {"n": {"$in": [-60, 4]}, "team": {"$ne": "q"}}, None, -1, 0, "desc"),
    # values: the keys and strings looked for in the stored text first
    # (``value_needles``), then ``matches``
    (None, None, {"note": "n1"}, -1, 0, "desc"),
    (None, None, {"items": [{"name": "x2"}]}, 5, 1, "asc"),
    (None, None, {"quote": 'say "hi"'}, 4, 0, "desc"),
    (None, None, {"note": "n1", "i": {"$in": [1, 5, 9, 13]}}, -1, 0, "desc"),
    ("error", {"team": "a"}, {"note": "n3", "flag": False}, -1, 0, "asc"),
    (None, None, {"note": "nowhere"}, 10, 0, "desc"),
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


def test_a_metadata_search_decodes_only_the_threads_the_database_found(
    storage_factory: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Of 600 threads, a search by owner (an auth handler's filter on every search) and
    one by a nested value hand Python the threads whose metadata holds them, not every
    thread: SQLite compares their strings (``json_extract``), PostgreSQL asks its index
    of metadata (``server_thread_metadata``, kept by triggers). Before, PostgreSQL
    decoded all 600 for both - at 300,000 threads, ~0.7 s a search - and SQLite all 600
    for the nested one. A search by values reads the states whose text holds the
    filter's keys and strings (``value_needles``): before, every state was decoded."""
    from threadloom.server.storage import rows as rows_module

    given: list[int] = []
    add = rows_module.ThreadPage.add

    def counted(self: Any, rows: Any) -> bool:
        rows = list(rows)
        given.append(len(rows))
        return add(self, rows)

    async def scenario() -> tuple[int, int, int]:
        storage = storage_factory()
        await storage.setup()
        try:
            await _fill(storage, [
                {"thread_id": new_id(), "created_at": _stamp(i), "status": "idle",
                 "values": {"stage": f"s{i % 300}", "log": ["s42"] * (i % 7 == 0)},
                 "metadata": {"owner": f"user-{i % 150}", "prefs": {"lang": f"l{i % 200}"}}}
                for i in range(600)
            ])
            monkeypatch.setattr(rows_module.ThreadPage, "add", counted)
            by_owner = await storage.search_threads(
                ids=None, metadata={"owner": "user-7"}, values=None, status=None, limit=10,
                offset=0, sort_by=None, sort_order=None)
            owner_rows = sum(given)
            given.clear()
            by_nested = await storage.search_threads(
                ids=None, metadata={"prefs": {"lang": "l3"}}, values=None, status=None,
                limit=10, offset=0, sort_by=None, sort_order=None)
            nested_rows = sum(given)
            given.clear()
            by_values = await storage.search_threads(
                ids=None, metadata=None, values={"stage": "s42"}, status=None, limit=10,
                offset=0, sort_by=None, sort_order=None)
            assert [t["metadata"]["owner"] for t in by_owner] == ["user-7"] * 4
            assert [t["metadata"]["prefs"]["lang"] for t in by_nested] == ["l3"] * 3
            assert [t["values"]["stage"] for t in by_values] == ["s42"] * 2
            return owner_rows, nested_rows, sum(given)
        finally:
            await storage.close()

    # by values: the 2 threads at stage s42 and the 85 others holding "s42" in their
    # log (every seventh), which ``matches`` turns down - not all 600
    assert asyncio.run(scenario()) == (4, 3, 87)


def test_the_index_of_metadata_follows_each_change(storage_factory: Any) -> None:
    """A thread's metadata changed, merged, emptied of what a filter wants, its thread
    deleted or copied: a search finds the threads as they are now, never as they were."""
    async def scenario() -> None:
        storage = storage_factory()
        await storage.setup()

        async def found(metadata: dict[str, Any]) -> list[str]:
            got = await storage.search_threads(
                ids=None, metadata=metadata, values=None, status=None, limit=-1,
                offset=0, sort_by=None, sort_order=None)
            return sorted(t["thread_id"] for t in got)

        try:
            plain, moved, gone = (_record(i, {}) for i in range(3))
            moved["metadata"] = {"owner": "ann", "stage": "draft"}
            gone["metadata"] = {"owner": "ann"}
            await _fill(storage, [plain, moved, gone])
            ids = {"plain": plain["thread_id"], "moved": moved["thread_id"],
                   "gone": gone["thread_id"]}
            assert await found({"owner": "ann"}) == sorted([ids["moved"], ids["gone"]])
            await storage.update_thread(ids["plain"], metadata={"owner": "ann"})
            await storage.update_thread(ids["moved"], metadata={"owner": "bob"})
            assert await found({"owner": "ann"}) == sorted([ids["plain"], ids["gone"]])
            assert await found({"owner": "bob", "stage": "draft"}) == [ids["moved"]]
            await storage.update_thread(ids["moved"], status="busy")  # metadata as it was
            assert await found({"stage": "draft"}) == [ids["moved"]]
            assert await storage.delete_thread(ids["gone"])
            assert await found({"owner": "ann"}) == [ids["plain"]]
            copy = _record(9, {"owner": "ann", "copied": True})
            await _fill(storage, [copy])
            assert await found({"owner": "ann"}) == sorted([ids["plain"], copy["thread_id"]])
        finally:
            await storage.close()

    asyncio.run(scenario())


def _record(i: int, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"thread_id": new_id(), "created_at": _stamp(i), "status": "idle",
            "values": None, "metadata": metadata}


def test_postgres_indexes_the_metadata_of_threads_stored_before(
    fresh_postgres_database: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database of the version before the index of metadata, holding threads - one
    with metadata jsonb refuses, one with none - is migrated on the next setup: every
    thread is found by its metadata, the one jsonb refuses too; the triggers keep the
    index whatever the search_path of the session writing."""
    from threadloom.server.storage import postgres

    latest = list(postgres.MIGRATIONS)
    version = next(i for i, m in enumerate(latest)
                   if any("server_thread_metadata (" in statement for statement in m))
    records = [_record(0, {"owner": "ann", "n": 1}), _record(1, {"owner": "ann\u0000x"}),
               _record(2, {}), _record(3, {"owner": "bob"})]

    async def scenario() -> None:
        monkeypatch.setattr(postgres, "MIGRATIONS", latest[:version])
        old = postgres.PostgresStorage(fresh_postgres_database, pool_size=2)
        await old.setup()
        try:
            assert await old._rows("SELECT to_regclass('server_thread_metadata')") == [(None,)]
            await _fill(old, records)
        finally:
            await old.close()
        monkeypatch.setattr(postgres, "MIGRATIONS", latest)
        new = postgres.PostgresStorage(fresh_postgres_database, pool_size=2)
        await new.setup()
        try:
            indexed = await new._rows(
                "SELECT thread_id, doc IS NULL FROM server_thread_metadata ORDER BY thread_id")
            assert indexed == sorted((records[i]["thread_id"], i == 1) for i in (0, 1, 3))
            for metadata, want in (({"owner": "ann"}, [0]), ({"owner": "ann\u0000x"}, [1]),
                                   ({"n": 1.0}, [0]), ({"owner": "bob"}, [3])):
                got = await new.search_threads(
                    ids=None, metadata=metadata, values=None, status=None, limit=-1,
                    offset=0, sort_by=None, sort_order=None)
                assert [t["thread_id"] for t in got] == [records[i]["thread_id"]
                                                         for i in want], metadata
            # a writer whose search_path does not name the schema (an operator's tool)
            import psycopg

            async with await psycopg.AsyncConnection.connect(
                    fresh_postgres_database, autocommit=True,
                    options="-c search_path=pg_catalog") as other:
                await other.execute(
                    "UPDATE public.server_threads SET metadata = %s WHERE thread_id = %s",
                    ('{"owner": "cy"}', records[3]["thread_id"]))
            got = await new.search_threads(
                ids=None, metadata={"owner": "cy"}, values=None, status=None, limit=-1,
                offset=0, sort_by=None, sort_order=None)
            assert [t["thread_id"] for t in got] == [records[3]["thread_id"]]
        finally:
            await new.close()

    asyncio.run(scenario())
