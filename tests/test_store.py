"""Conformance tests for ``threadloom.store``.

One suite runs against every backend and calling style, because nodes and tools must get
the same answers whichever store a graph is compiled with:

* ``memory``   - InMemoryStore (sync and async methods)
* ``sqlite``   - SqliteStore on a temporary file (sync, and async via a worker thread)
* ``postgres`` - PostgresStore (sync, and async via a worker thread)
* ``apg``      - AsyncPostgresStore (async, and its sync methods called from a thread)

PostgreSQL comes from ``THREADLOOM_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). When it cannot be reached those cases are
skipped, unless ``CI=true``, where an unreachable database is a failure. Every test writes
under a fresh random root label and deletes its rows afterwards, so runs can share a
database.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import pickle
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import POSTGRES_URL, require_postgres
from langchain_core.embeddings import Embeddings

from threadloom.store import (
    BaseStore,
    InMemoryStore,
    InvalidNamespaceError,
    Item,
    SearchItem,
    SemanticSearchNotSupportedError,
)
from threadloom.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from threadloom.store.sqlite import SqliteStore

# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url() -> str:
    """The PostgreSQL URL, or skip (locally) / fail (CI=true) when it is unusable."""
    require_postgres()
    return POSTGRES_URL


@pytest.fixture(scope="module")
def pg_sync_store(pg_url: str) -> Iterator[Any]:
    from threadloom.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(pg_url) as store:
        yield store


@pytest.fixture(scope="module")
def pg_cleanup(pg_url: str) -> Iterator[Any]:
    """Deletes one test's rows (everything under its root label)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:

        def cleanup(root: str) -> None:
            conn.execute(
                "DELETE FROM store_items WHERE prefix = %s OR (prefix >= %s AND prefix < %s)",
                (root, root + ".", root + "/"),
            )

        yield cleanup


class Harness:
    """Calls a store the way a test case asks, in one of three styles.

    ``sync`` calls ``store.put`` directly, ``async`` awaits ``store.aput``, ``thread``
    calls the sync method from a worker thread (how sync nodes use an async store).
    """

    def __init__(self, store: BaseStore, kind: str, mode: str, root: str) -> None:
        self.store = store
        self.kind = kind
        self.mode = mode
        self.root = root
        # LangGraph's in-memory store resets created_at on overwrite; SQL stores keep it.
        self.resets_created_at = kind == "memory"

    def ns(self, *labels: str) -> tuple[str, ...]:
        return (self.root, *labels)

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "async":
            return await getattr(self.store, "a" + name)(*args, **kwargs)
        method = getattr(self.store, name)
        if self.mode == "thread":
            return await asyncio.to_thread(method, *args, **kwargs)
        return method(*args, **kwargs)

    async def put(self, *args: Any, **kwargs: Any) -> None:
        await self._call("put", *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Item | None:
        return await self._call("get", *args, **kwargs)

    async def search(self, *args: Any, **kwargs: Any) -> list[SearchItem]:
        return await self._call("search", *args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        await self._call("delete", *args, **kwargs)

    async def list_namespaces(self, **kwargs: Any) -> list[tuple[str, ...]]:
        return await self._call("list_namespaces", **kwargs)

    async def batch(self, ops: list[Any]) -> list[Any]:
        return await self._call("batch", ops)

    async def keys(self, prefix: tuple[str, ...] | None = None, **kwargs: Any) -> list[str]:
        kwargs.setdefault("limit", 100)
        items = await self.search(prefix if prefix is not None else self.ns(), **kwargs)
        return [item.key for item in items]


CASES = [
    ("memory", "sync"),
    ("memory", "async"),
    ("sqlite", "sync"),
    ("sqlite", "async"),
    ("postgres", "sync"),
    ("postgres", "async"),
    ("apg", "async"),
    ("apg", "thread"),
    # from_conn_string options: statements in pipeline mode, connections from a pool
    ("postgres_pipe", "sync"),
    ("postgres_pool", "thread"),
    ("apg_pipe", "async"),
    ("apg_pool", "async"),
]

PG_OPTIONS: dict[str, dict[str, Any]] = {
    "pipe": {"pipeline": True},
    "pool": {"pool_config": {"max_size": 3}},
}


@pytest.fixture(params=CASES, ids=[f"{kind}-{mode}" for kind, mode in CASES])
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    kind, mode = request.param
    root = f"t{uuid.uuid4().hex[:12]}"
    if kind == "memory":
        yield Harness(InMemoryStore(), kind, mode, root)
    elif kind == "sqlite":
        with SqliteStore.from_conn_string(str(tmp_path / "store.db")) as store:
            yield Harness(store, kind, mode, root)
    elif kind == "postgres":
        store = request.getfixturevalue("pg_sync_store")
        cleanup = request.getfixturevalue("pg_cleanup")
        try:
            yield Harness(store, kind, mode, root)
        finally:
            cleanup(root)
    elif kind.startswith("postgres_"):
        from threadloom.store.postgres import PostgresStore

        url = request.getfixturevalue("pg_url")
        cleanup = request.getfixturevalue("pg_cleanup")
        options = PG_OPTIONS[kind.removeprefix("postgres_")]
        try:
            with PostgresStore.from_conn_string(url, **options) as store:
                yield Harness(store, kind, mode, root)
        finally:
            cleanup(root)
    else:
        from threadloom.store.postgres import AsyncPostgresStore

        url = request.getfixturevalue("pg_url")
        cleanup = request.getfixturevalue("pg_cleanup")
        options = PG_OPTIONS.get(kind.removeprefix("apg_"), {})
        try:
            async with AsyncPostgresStore.from_conn_string(url, **options) as store:
                yield Harness(store, kind, mode, root)
        finally:
            cleanup(root)


# --------------------------------------------------------------------------------------
# Conformance suite
# --------------------------------------------------------------------------------------


async def test_put_get_delete(h: Harness) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    await h.put(h.ns("users", "u1"), "prefs", {"theme": "dark", "n": 1})
    item = await h.get(h.ns("users", "u1"), "prefs")
    assert isinstance(item, Item)
    assert item.namespace == h.ns("users", "u1")
    assert item.key == "prefs"
    assert item.value == {"theme": "dark", "n": 1}
    assert item.created_at.tzinfo is not None and item.updated_at.tzinfo is not None
    assert before < item.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert item.created_at == item.updated_at

    assert await h.get(h.ns("users", "u1"), "missing") is None
    assert await h.get(h.ns("users"), "prefs") is None  # namespaces are exact for get
    assert await h.get(h.ns("users", "u2"), "prefs") is None

    await h.delete(h.ns("users", "u1"), "prefs")
    assert await h.get(h.ns("users", "u1"), "prefs") is None
    await h.delete(h.ns("users", "u1"), "prefs")  # deleting a missing item is a no-op


async def test_overwrite_updates_value_and_timestamps(h: Harness) -> None:
    await h.put(h.ns("a"), "k", {"v": 1})
    first = await h.get(h.ns("a"), "k")
    await asyncio.sleep(0.005)
    await h.put(h.ns("a"), "k", {"v": 2})
    second = await h.get(h.ns("a"), "k")
    assert first is not None and second is not None
    assert second.value == {"v": 2}
    assert second.updated_at > first.updated_at
    if h.resets_created_at:
        assert second.created_at == second.updated_at > first.created_at
    else:
        assert second.created_at == first.created_at


async def test_stored_values_are_isolated_from_callers(h: Harness) -> None:
    value = {"tags": ["a"], "nested": {"x": 1}}
    await h.put(h.ns("a"), "k", value)
    value["tags"].append("b")
    value["nested"]["x"] = 2
    got = await h.get(h.ns("a"), "k")
    assert got is not None and got.value == {"tags": ["a"], "nested": {"x": 1}}
    got.value["tags"].append("c")
    again = await h.get(h.ns("a"), "k")
    assert again is not None and again.value == {"tags": ["a"], "nested": {"x": 1}}


async def test_search_by_prefix_in_insertion_order(h: Harness) -> None:
    await h.put(h.ns("docs", "x"), "1", {"marker": h.root})
    await h.put(h.ns("other"), "2", {"marker": h.root})
    await h.put(h.ns("docs"), "3", {"marker": h.root})
    await h.put(h.ns("docs", "x", "deep"), "4", {"marker": h.root})
    await h.put(h.ns("docsx"), "5", {"marker": h.root})  # label prefix, not namespace prefix

    assert await h.keys(h.ns("docs")) == ["1", "3", "4"]
    assert await h.keys(h.ns("docs", "x")) == ["1", "4"]
    assert await h.keys(h.ns("docs", "x", "deep")) == ["4"]
    assert await h.keys(h.ns("nope")) == []
    assert await h.keys() == ["1", "2", "3", "4", "5"]
    # The empty prefix searches everything (filter to this test's rows in shared DBs).
    everything = await h.search((), filter={"marker": h.root}, limit=50)
    assert [item.key for item in everything] == ["1", "2", "3", "4", "5"]

    # Overwriting keeps the position; delete + put moves the item to the end.
    await h.put(h.ns("docs", "x"), "1", {"marker": h.root, "v": 2})
    assert await h.keys() == ["1", "2", "3", "4", "5"]
    await h.delete(h.ns("other"), "2")
    await h.put(h.ns("other"), "2", {"marker": h.root})
    assert await h.keys() == ["1", "3", "4", "5", "2"]

    hit = (await h.search(h.ns("docs", "x", "deep")))[0]
    assert isinstance(hit, SearchItem)
    assert hit.score is None
    assert hit.namespace == h.ns("docs", "x", "deep")
    assert hit == await h.get(h.ns("docs", "x", "deep"), "4")


async def test_limit_and_offset(h: Harness) -> None:
    for i in range(7):
        await h.put(h.ns("p"), f"k{i}", {"i": i})
    assert await h.keys(h.ns("p"), limit=3) == ["k0", "k1", "k2"]
    assert await h.keys(h.ns("p"), limit=3, offset=3) == ["k3", "k4", "k5"]
    assert await h.keys(h.ns("p"), limit=3, offset=6) == ["k6"]
    assert await h.keys(h.ns("p"), limit=3, offset=7) == []
    assert await h.keys(h.ns("p"), limit=0) == []
    assert len(await h.search(h.ns("p"))) == 7  # default limit is 10
    assert await h.keys(h.ns("p"), filter={"i": {"$gte": 2}}, limit=2, offset=1) == [
        "k3",
        "k4",
    ]


async def _load_filter_fixture(h: Harness) -> None:
    docs = {
        "one": {"n": 1, "s": "apple", "flag": True, "meta": {"level": 1, "tag": "x"}},
        "two": {"n": 2, "s": "banana", "flag": False, "meta": {"level": 2, "tag": "y"}},
        "three": {"n": 3.0, "s": "cherry", "meta": {"level": 3}},
        "four": {"n": 4, "s": "Date", "none": None, "meta": {}},
        "str3": {"n": "3", "s": 3},  # wrong types must not satisfy numeric/string tests
        "boolish": {"n": True},
        "bare": {},
    }
    for key, value in docs.items():
        await h.put(h.ns("f"), key, value)


async def test_filter_operators(h: Harness) -> None:
    await _load_filter_fixture(h)

    async def match(filter: dict[str, Any]) -> list[str]:
        return await h.keys(h.ns("f"), filter=filter)

    assert await match({"n": 2}) == ["two"]
    assert await match({"n": 3}) == ["three"]  # 3 == 3.0, but never the string "3"
    assert await match({"n": "3"}) == ["str3"]
    assert await match({"n": 1}) == ["one"]  # True is not 1
    assert await match({"n": True}) == ["boolish"]
    assert await match({"flag": False}) == ["two"]
    assert await match({"none": None}) == ["four"]  # explicit null only, not missing
    assert await match({"n": {"$eq": 4}}) == ["four"]
    assert await match({"n": {"$ne": 2}}) == ["one", "three", "four", "str3", "boolish", "bare"]
    not_true = ["two", "three", "four", "str3", "boolish", "bare"]
    assert await match({"flag": {"$ne": True}}) == not_true
    assert await match({"n": {"$gt": 2}}) == ["three", "four"]
    assert await match({"n": {"$gte": 2}}) == ["two", "three", "four"]
    assert await match({"n": {"$lt": 3}}) == ["one", "two"]
    assert await match({"n": {"$lte": 3}}) == ["one", "two", "three"]
    assert await match({"n": {"$gt": 1.5, "$lt": 3.5}}) == ["two", "three"]
    # Strings compare by code point ("D" < "a"), only against strings.
    assert await match({"s": {"$gt": "b"}}) == ["two", "three"]
    assert await match({"s": {"$lt": "b"}}) == ["one", "four"]
    assert await match({"s": {"$gte": "banana", "$lte": "cherry"}}) == ["two", "three"]
    assert await match({"n": {"$gte": 1}, "s": {"$ne": "apple"}}) == ["two", "three", "four"]
    assert await match({"missing": {"$ne": 1}}) == await h.keys(h.ns("f"))
    assert await match({"missing": 1}) == []
    assert await match({"missing": {"$gt": 0}}) == []


async def test_filter_nested_fields_and_containers(h: Harness) -> None:
    await _load_filter_fixture(h)
    await h.put(h.ns("f"), "list", {"tags": ["a", "b"], "obj": {"a": 1, "b": [1, 2]}})
    await h.put(h.ns("f"), "list2", {"tags": ["a", "b", "c"], "obj": {"a": 1}})

    async def match(filter: dict[str, Any], **kwargs: Any) -> list[str]:
        return await h.keys(h.ns("f"), filter=filter, **kwargs)

    assert await match({"meta.level": 2}) == ["two"]
    assert await match({"meta.level": {"$gte": 2}}) == ["two", "three"]
    assert await match({"meta": {"tag": "x"}}) == ["one"]  # partial match == dotted key
    assert await match({"meta": {"level": {"$lt": 3}, "tag": {"$ne": "x"}}}) == ["two"]
    assert await match({"meta": {}}) == ["one", "two", "three", "four"]  # "is an object"
    assert await match({"meta.tag": {"$ne": "x"}}) == [
        "two",
        "three",
        "four",
        "str3",
        "boolish",
        "bare",
        "list",
        "list2",
    ]
    assert await match({"tags": ["a", "b"]}) == ["list"]
    assert await match({"tags": ("a", "b", "c")}) == ["list2"]
    assert await match({"tags": {"$ne": ["a", "b"]}}, limit=3) == ["one", "two", "three"]
    assert await match({"tags": {"$ne": ["a", "b"]}}, limit=2, offset=6) == ["bare", "list2"]
    assert await match({"obj": {"$eq": {"a": 1}}}) == ["list2"]  # $eq on objects is exact
    assert await match({"obj": {"a": 1}}) == ["list", "list2"]  # bare dict is partial
    assert await match({"obj.b": [1.0, 2]}) == ["list"]
    assert await match({"tags.0": "a"}) == []  # dots never index into lists


async def test_list_namespaces(h: Harness) -> None:
    for labels in [("a", "x", "1"), ("a", "y", "1"), ("b", "x"), ("b", "x", "2"), ("c",)]:
        await h.put(h.ns(*labels), "k", {"v": 1})
    await h.put(h.ns("b", "x"), "k2", {"v": 2})  # same namespace twice: listed once
    r = h.root

    assert await h.list_namespaces(prefix=(r,)) == [
        (r, "a", "x", "1"),
        (r, "a", "y", "1"),
        (r, "b", "x"),
        (r, "b", "x", "2"),
        (r, "c"),
    ]
    assert await h.list_namespaces(prefix=(r, "b")) == [(r, "b", "x"), (r, "b", "x", "2")]
    assert await h.list_namespaces(prefix=(r,), suffix=("x",)) == [(r, "b", "x")]
    assert await h.list_namespaces(prefix=(r,), suffix=("1",)) == [
        (r, "a", "x", "1"),
        (r, "a", "y", "1"),
    ]
    assert await h.list_namespaces(prefix=(r,), max_depth=2) == [(r, "a"), (r, "b"), (r, "c")]
    assert await h.list_namespaces(prefix=(r,), max_depth=3) == [
        (r, "a", "x"),
        (r, "a", "y"),
        (r, "b", "x"),
        (r, "c"),
    ]
    assert await h.list_namespaces(prefix=(r, "*", "x")) == [
        (r, "a", "x", "1"),
        (r, "b", "x"),
        (r, "b", "x", "2"),
    ]
    assert await h.list_namespaces(prefix=(r,), suffix=("*", "1")) == [
        (r, "a", "x", "1"),
        (r, "a", "y", "1"),
    ]
    assert await h.list_namespaces(prefix=(r,), limit=2, offset=1) == [
        (r, "a", "y", "1"),
        (r, "b", "x"),
    ]
    assert await h.list_namespaces(prefix=(r, "zzz")) == []
    everything = await h.list_namespaces(limit=100_000)
    assert (r, "c") in everything and everything == sorted(everything)


async def test_batch_runs_ops_in_order(h: Harness) -> None:
    ns = h.ns("b")
    results = await h.batch(
        [
            PutOp(ns, "k", {"v": 1}),
            GetOp(ns, "k"),
            SearchOp(ns),
            ListNamespacesOp((MatchCondition("prefix", (h.root,)),)),
            PutOp(ns, "k", None),
            GetOp(ns, "k"),
        ]
    )
    assert results[0] is None
    assert results[1].value == {"v": 1}
    assert [item.key for item in results[2]] == ["k"]
    assert results[3] == [ns]
    assert results[4] is None and results[5] is None


async def test_invalid_batch_changes_nothing(h: Harness) -> None:
    with pytest.raises(InvalidNamespaceError):
        await h.batch([PutOp(h.ns("b"), "ok", {"v": 1}), PutOp(h.ns("bad.label"), "k", {})])
    assert await h.get(h.ns("b"), "ok") is None


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda h: h.put((), "k", {}), InvalidNamespaceError, "()"),
        (lambda h: h.put(h.ns("a.b"), "k", {}), InvalidNamespaceError, "'a.b'"),
        (lambda h: h.put(h.ns(""), "k", {}), InvalidNamespaceError, "empty"),
        (lambda h: h.put(h.ns("ok", 7), "k", {}), InvalidNamespaceError, "7"),
        (lambda h: h.put(h.ns("nul\x00"), "k", {}), InvalidNamespaceError, "'nul\\x00'"),
        (lambda h: h.put(("langgraph", "x"), "k", {}), InvalidNamespaceError, "'langgraph'"),
        (lambda h: h.put("users", "k", {}), InvalidNamespaceError, "'users'"),
        (lambda h: h.put(h.ns("a"), "k", ["not", "a", "dict"]), ValueError, "['not', 'a'"),
        (lambda h: h.put(h.ns("a"), "k", "text"), ValueError, "'text'"),
        (lambda h: h.put(h.ns("a"), 42, {}), ValueError, "42"),
        (lambda h: h.get(h.ns("a.b"), "k"), InvalidNamespaceError, "'a.b'"),
        (lambda h: h.search(h.ns("x.y")), InvalidNamespaceError, "'x.y'"),
        (lambda h: h.search(h.ns(), limit=-1), ValueError, "-1"),
        (lambda h: h.list_namespaces(prefix=("a.b",)), InvalidNamespaceError, "'a.b'"),
        (lambda h: h.list_namespaces(max_depth=0), ValueError, "0"),
    ],
    ids=[
        "empty-ns",
        "dot-label",
        "empty-label",
        "non-str-label",
        "nul-label",
        "reserved-root",
        "bare-string-ns",
        "list-value",
        "str-value",
        "int-key",
        "get-dot-label",
        "search-dot-label",
        "negative-limit",
        "list-ns-dot-label",
        "max-depth-zero",
    ],
)
async def test_validation_errors(h: Harness, call: Any, error: type, fragment: str) -> None:
    with pytest.raises(error) as info:
        await call(h)
    assert fragment in str(info.value)


async def test_semantic_search_and_ttl_are_rejected_clearly(h: Harness) -> None:
    with pytest.raises(SemanticSearchNotSupportedError, match="not supported"):
        await h.search(h.ns(), query="what does the user like?")
    assert issubclass(SemanticSearchNotSupportedError, NotImplementedError)
    assert await h.search(h.ns(), query=None) == []
    with pytest.raises(NotImplementedError, match="TTL"):
        await h.put(h.ns("a"), "k", {"v": 1}, ttl=5)
    await h.put(h.ns("a"), "k", {"v": 1}, ttl=None)  # explicit "no TTL" is fine
    await h.put(h.ns("a"), "k2", {"v": 1}, index=False)
    assert (await h.get(h.ns("a"), "k", refresh_ttl=False)) is not None


HOSTILE_LABELS = [
    "'; DROP TABLE store_items; --",
    "%",
    "_",
    "a%",
    "\\",
    '"quoted"',
    "Robert'); DELETE FROM store_migrations;--",
    "ünïcødé 🎉",
    "*",
]


async def test_injection_looking_input_is_stored_verbatim(h: Harness) -> None:
    key = "' OR '1'='1"
    value = {
        "sql": "x'); DROP TABLE store_items; --",
        "$gt": "dollar key",
        "path": "$.a[0]",
        "emoji": "🎉",
    }
    for label in HOSTILE_LABELS:
        await h.put(h.ns(label), key, value)
        item = await h.get(h.ns(label), key)
        assert item is not None
        assert (item.namespace, item.key, item.value) == (h.ns(label), key, value)
    await h.put(h.ns("ab"), key, {"sibling": True})
    await h.put(h.ns("a_"), key, {"sibling": True})

    # Wildcard-looking labels only ever match themselves.
    for label in ["%", "_", "a%", "*"]:
        hits = await h.search(h.ns(label))
        assert [(item.namespace, item.value) for item in hits] == [(h.ns(label), value)]
    assert await h.keys(filter={"sql": value["sql"]}) == [key] * len(HOSTILE_LABELS)
    listed = await h.list_namespaces(prefix=(h.root,))
    assert sorted(listed) == sorted([h.ns(label) for label in HOSTILE_LABELS + ["ab", "a_"]])
    # The tables are intact and still work.
    await h.put(h.ns("after"), "k", {"ok": True})
    assert (await h.get(h.ns("after"), "k")) is not None


@pytest.mark.parametrize(
    "bad_key",
    [
        "a') OR 1=1 --",
        "x; DROP TABLE store_items",
        "$.a",
        "a b",
        "a..b",
        ".a",
        "a.",
        "",
        "a" * 129,
        "a[0]",
        'a"b',
        "ü",
        7,
    ],
)
async def test_hostile_filter_keys_are_rejected(h: Harness, bad_key: Any) -> None:
    await h.put(h.ns("a"), "k", {"v": 1})
    with pytest.raises(ValueError) as info:
        await h.search(h.ns(), filter={bad_key: 1})
    assert repr(bad_key) in str(info.value)


@pytest.mark.parametrize(
    ("bad_filter", "fragment"),
    [
        ({"n": {"$regex": "x"}}, "'$regex'"),
        ({"n": {"$gt": 1, "plain": 2}}, "mixes"),
        ({"n": {"$gt": True}}, "True"),
        ({"n": {"$lt": [1]}}, "[1]"),
        ({"n": float("nan")}, "nan"),
        ({"n": object()}, "object"),
        ({"n": {"nested key": 1}}, "'n.nested key'"),
    ],
)
async def test_bad_filters_are_rejected(h: Harness, bad_filter: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        await h.search(h.ns(), filter=bad_filter)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------------------
# Data shapes
# --------------------------------------------------------------------------------------


def test_item_shape_equality_and_serialization() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    item = Item(value={"a": 1}, key="k", namespace=("x", "y"), created_at=now, updated_at=now)
    same = Item(value={"a": 1}, key="k", namespace=["x", "y"], created_at=now, updated_at=now)
    assert item == same and hash(item) == hash(same)
    assert item.namespace == ("x", "y")
    assert item != Item(
        value={"a": 2}, key="k", namespace=("x", "y"), created_at=now, updated_at=now
    )
    assert item != Item(
        value={"a": 1},
        key="k",
        namespace=("x", "y"),
        created_at=now,
        updated_at=now + timedelta(seconds=1),
    )
    assert item.dict() == {
        "namespace": ["x", "y"],
        "key": "k",
        "value": {"a": 1},
        "created_at": "2025-01-02T03:04:05.000006+00:00",
        "updated_at": "2025-01-02T03:04:05.000006+00:00",
    }
    # ISO strings (as produced by .dict()) are accepted and parsed back.
    assert Item(**{**item.dict(), "namespace": ("x", "y")}) == item
    assert pickle.loads(pickle.dumps(item)) == item

    hit = SearchItem(("x", "y"), "k", {"a": 1}, now, now, score=0.5)
    assert hit == item  # a search hit equals the plain item with the same fields
    assert hit != SearchItem(("x", "y"), "k", {"a": 1}, now, now, score=0.7)
    assert hit.dict()["score"] == 0.5
    assert pickle.loads(pickle.dumps(hit)) == hit and "score=0.5" in repr(hit)


# --------------------------------------------------------------------------------------
# Semantic search (index=): InMemoryStore and SqliteStore
# --------------------------------------------------------------------------------------

_TOPICS = ("cat", "dog", "fish")


def _topic_vector(text: str) -> list[float]:
    """A 3-d bag of topic words: texts about the same animals point the same way."""
    lowered = text.lower()
    return [float(lowered.count(word)) for word in _TOPICS]


class TopicEmbeddings(Embeddings):
    """A LangChain Embeddings object that records which texts it saw (sync vs async)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.async_calls = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.seen.extend(texts)
        return [_topic_vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return _topic_vector(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.async_calls += 1
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        self.async_calls += 1
        return _topic_vector(text)


@contextlib.contextmanager
def _semantic_store(kind: str, index: dict[str, Any], tmp_path: Path) -> Iterator[BaseStore]:
    if kind == "memory":
        yield InMemoryStore(index=index)  # type: ignore[arg-type]
    else:
        with SqliteStore.from_conn_string(str(tmp_path / "sem.db"), index=index) as store:
            yield store


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_semantic_search_ranks_by_cosine_similarity(kind: str, tmp_path: Path) -> None:
    embeddings = TopicEmbeddings()
    index = {"embed": embeddings, "dims": 3, "fields": ["text"]}
    with _semantic_store(kind, index, tmp_path) as store:
        store.put(("docs",), "a", {"text": "dog dog", "other": "cat"})
        store.put(("docs",), "b", {"text": "cat and a cat"})
        store.put(("docs",), "c", {"text": "fish"}, index=False)  # stored, not indexed
        store.put(("docs", "sub"), "d", {"text": "cat dog"})
        store.put(("other",), "e", {"text": "cat"})
        # only the "text" field, and nothing from the index=False put
        assert embeddings.seen == ["dog dog", "cat and a cat", "cat dog", "cat"]

        hits = store.search(("docs",), query="a cat")
        assert [h.key for h in hits] == ["b", "d", "a", "c"]
        assert hits[0].score == pytest.approx(1.0)
        assert hits[1].score == pytest.approx(1 / math.sqrt(2))
        assert hits[2].score == pytest.approx(0.0)
        assert hits[3].score is None  # unindexed items follow, unscored
        assert all(isinstance(h, SearchItem) for h in hits)

        # filter, limit and offset apply to the ranked list
        assert [h.key for h in store.search(("docs",), query="cat", limit=2)] == ["b", "d"]
        assert [h.key for h in store.search(("docs",), query="cat", offset=1, limit=1)] == ["d"]
        filtered = store.search(("docs",), query="cat", filter={"other": "cat"})
        assert [h.key for h in filtered] == ["a"]
        # no query: the plain search, insertion order, no scores
        plain = store.search(("docs",))
        assert [h.key for h in plain] == ["a", "b", "c", "d"]
        assert {h.score for h in plain} == {None}

        # overwriting re-embeds; deleting drops the vectors with the item
        store.put(("docs",), "a", {"text": "cat"})
        assert store.search(("docs",), query="cat", limit=1)[0].score == pytest.approx(1.0)
        store.delete(("docs",), "b")
        assert "b" not in [h.key for h in store.search(("docs",), query="cat")]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_semantic_search_async_uses_async_embeddings(kind: str, tmp_path: Path) -> None:
    embeddings = TopicEmbeddings()
    index = {"embed": embeddings, "dims": 3, "fields": ["text"]}
    with _semantic_store(kind, index, tmp_path) as store:
        await store.aput(("docs",), "a", {"text": "fish"})
        await store.aput(("docs",), "b", {"text": "dog"})
        hits = await store.asearch(("docs",), query="dog")
        assert [h.key for h in hits] == ["b", "a"]
        assert embeddings.async_calls == 3


def test_semantic_index_field_paths_and_per_put_override() -> None:
    seen: list[str] = []

    def embed(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return [_topic_vector(t) for t in texts]

    store = InMemoryStore(
        index={"embed": embed, "dims": 3, "fields": ["title", "meta.summary", "notes[*].body"]}
    )
    store.put(
        ("n",), "k",
        {"title": "cat", "meta": {"summary": "dog"}, "notes": [{"body": "fish"}, {"x": 1}]},
    )
    assert seen == ["cat", "dog", "fish"]
    seen.clear()
    store.put(("n",), "k2", {"title": "cat", "tags": ["dog", "fish"]}, index=["tags[-1]"])
    assert seen == ["fish"]
    assert [h.key for h in store.search(("n",), query="fish")][0] in {"k", "k2"}
    seen.clear()
    whole = InMemoryStore(index={"embed": embed, "dims": 3})  # default field "$": the value
    whole.put(("n",), "k", {"a": "cat"})
    assert seen == ['{"a": "cat"}']


async def test_semantic_index_async_function_and_errors() -> None:
    async def aembed(texts: list[str]) -> list[list[float]]:
        return [_topic_vector(t) for t in texts]

    store = InMemoryStore(index={"embed": aembed, "dims": 3, "fields": ["text"]})
    await store.aput(("d",), "a", {"text": "dog"})
    assert (await store.asearch(("d",), query="dog"))[0].score == pytest.approx(1.0)
    # an async-only function cannot serve the sync methods inside a running loop
    with pytest.raises(RuntimeError, match="async-only"):
        store.put(("d",), "b", {"text": "cat"})
    assert await store.aget(("d",), "b") is None  # the failed batch changed nothing

    wrong = InMemoryStore(index={"embed": lambda texts: [[1.0] * 2 for _ in texts], "dims": 3})
    with pytest.raises(ValueError, match="dims=3"):
        wrong.put(("d",), "a", {"text": "x"})
    assert wrong.get(("d",), "a") is None
    with pytest.raises(ValueError, match="dims"):
        InMemoryStore(index={"embed": aembed})  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match="provider:model"):
        InMemoryStore(index={"embed": "no-colon", "dims": 3})
    with pytest.raises(TypeError, match="embed"):
        InMemoryStore(index={"embed": 42, "dims": 3})
    with pytest.raises(ValueError, match="Invalid index field path"):
        InMemoryStore(index={"embed": aembed, "dims": 3, "fields": ["a..b"]})
    with pytest.raises(ValueError, match="Invalid index field path"):
        await store.aput(("d",), "c", {"a": 1}, index=["a["])


def test_semantic_search_needs_an_index_and_postgres_says_it_has_none() -> None:
    from threadloom.store.postgres import AsyncPostgresStore, PostgresStore

    with pytest.raises(SemanticSearchNotSupportedError, match="not supported"):
        InMemoryStore().search(("d",), query="x")
    for cls in (PostgresStore, AsyncPostgresStore):
        with pytest.raises(SemanticSearchNotSupportedError, match=cls.__name__):
            cls(None, index={"embed": lambda t: [], "dims": 3})


def test_lazy_exports() -> None:
    import threadloom.store as store_pkg

    assert store_pkg.SqliteStore is SqliteStore
    with pytest.raises(AttributeError):
        _ = store_pkg.NoSuchStore


# --------------------------------------------------------------------------------------
# SQLite specifics
# --------------------------------------------------------------------------------------


def test_sqlite_data_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "memories.db")
    with SqliteStore.from_conn_string(path) as store:
        store.put(("users", "u1"), "prefs", {"theme": "dark", "tags": ["x"]})
        store.put(("users", "u1"), "order", {"i": 1})
        original = store.get(("users", "u1"), "prefs")
    with SqliteStore.from_conn_string(path) as store:
        assert store.get(("users", "u1"), "prefs") == original
        assert [item.key for item in store.search(("users",))] == ["prefs", "order"]
        assert store.list_namespaces() == [("users", "u1")]


def test_sqlite_setup_is_idempotent_and_versioned(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with SqliteStore.from_conn_string(path) as store:
        store.setup()
        store.setup()
        versions = store.conn.execute("SELECT v FROM store_migrations").fetchall()
        assert versions == [(0,), (1,)]  # items; vectors (semantic search)
        tables = {
            row[0]
            for row in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        assert {"store_items", "store_migrations"} <= tables


def test_sqlite_with_a_caller_owned_connection(tmp_path: Path) -> None:
    # Default (legacy) transaction handling; setup runs lazily on first use.
    conn = sqlite3.connect(str(tmp_path / "own.db"), check_same_thread=False)
    try:
        store = SqliteStore(conn)
        store.put(("a",), "k", {"v": 1})
        assert not conn.in_transaction  # our write committed
        # Inside the caller's own transaction the write joins it (savepoint).
        conn.execute("CREATE TABLE mine (x)")
        conn.execute("INSERT INTO mine VALUES (1)")
        assert conn.in_transaction
        store.put(("a",), "k2", {"v": 2})
        conn.rollback()
        assert store.get(("a",), "k2") is None
        assert store.get(("a",), "k") is not None
        assert asyncio.run(store.aget(("a",), "k")) is not None
    finally:
        conn.close()


def test_sqlite_rejects_non_json_values_naming_the_key(tmp_path: Path) -> None:
    with SqliteStore.from_conn_string(str(tmp_path / "j.db")) as store:
        with pytest.raises(ValueError, match="'when'"):
            store.put(("a",), "when", {"at": datetime.now(UTC)})
        with pytest.raises(ValueError, match="'nan'"):
            store.put(("a",), "nan", {"x": float("inf")})
        assert store.search(("a",)) == []


def test_sqlite_hostile_values_do_not_break_the_schema(tmp_path: Path) -> None:
    with SqliteStore.from_conn_string(str(tmp_path / "h.db")) as store:
        store.put(("x",), "k'); DROP TABLE store_items; --", {"v": "'); DROP TABLE x; --"})
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert "store_items" in tables
        assert store.search(("x",), filter={"v": "'); DROP TABLE x; --"})[0].key.startswith("k'")


# --------------------------------------------------------------------------------------
# PostgreSQL specifics
# --------------------------------------------------------------------------------------


def test_postgres_setup_is_idempotent_under_concurrency(pg_url: str) -> None:
    import psycopg

    from threadloom.store.postgres import PostgresStore

    errors: list[BaseException] = []

    def run_setup() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                PostgresStore(conn).setup()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run_setup) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(pg_url, autocommit=True) as conn:
        versions = conn.execute("SELECT v FROM store_migrations ORDER BY v").fetchall()
        assert versions == [(0,)]


def test_postgres_with_a_connection_pool(pg_url: str, pg_cleanup: Any) -> None:
    from psycopg_pool import ConnectionPool

    from threadloom.store.postgres import PostgresStore

    root = f"t{uuid.uuid4().hex[:12]}"
    try:
        with ConnectionPool(pg_url, min_size=1, max_size=2, open=True) as pool:
            store = PostgresStore(pool)
            store.put((root, "p"), "k", {"v": 1})
            assert store.get((root, "p"), "k").value == {"v": 1}
            assert asyncio.run(store.asearch((root,)))[0].key == "k"
    finally:
        pg_cleanup(root)


def test_postgres_rejects_non_json_values(pg_sync_store: Any) -> None:
    with pytest.raises(ValueError, match="'when'"):
        pg_sync_store.put(("tjson",), "when", {"at": datetime.now(UTC)})


async def test_async_postgres_sync_call_on_loop_thread_raises(pg_url: str) -> None:
    from threadloom.store.postgres import AsyncPostgresStore

    async with AsyncPostgresStore.from_conn_string(pg_url) as store:
        with pytest.raises(asyncio.InvalidStateError, match="async methods"):
            store.get(("x",), "k")


def test_pool_config_with_an_unknown_key_is_refused(pg_url: str) -> None:
    from threadloom.store.postgres import PostgresStore

    with pytest.raises(ValueError, match="max_conns"):
        with PostgresStore.from_conn_string(pg_url, pool_config={"max_conns": 3}):  # type: ignore[typeddict-unknown-key]
            pass
