"""Runs the saver conformance suite (``tests/checkpoint_conformance.py``) on every saver.

Kinds: ``memory`` (InMemorySaver), ``sqlite`` / ``sqlite_async`` (a file in tmp_path),
``postgres`` / ``postgres_async`` (a fresh schema per test in the database named by
``THREADLOOM_TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``).
When Postgres cannot be reached its cases are skipped, except under ``CI=true``, where
they fail: CI must not silently lose the production backend's coverage.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import checkpoint_conformance as suite
import pytest
from checkpoint_conformance import Api, SaverKit
from helpers import require_postgres

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.checkpoint.trace import TraceEvent

# Collect the suite's test functions here, where the fixtures below parametrize them.
globals().update({k: v for k, v in vars(suite).items() if k.startswith("test_")})

KINDS = ["memory", "sqlite", "sqlite_async", "postgres", "postgres_async"]
ASYNC_KINDS = {"sqlite_async", "postgres_async"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per saver kind."""
    if "saver_kind" not in metafunc.fixturenames:
        return
    metafunc.parametrize("saver_kind", [pytest.param(kind, id=kind) for kind in KINDS])


# -- Postgres plumbing (the schemas: conftest.py's ``pg_schemas``) ---------------------------


def _pg_raw_sql(url: str) -> Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    import psycopg

    def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    return run


def _sqlite_raw_sql(path: str) -> Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    def run(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    return run


# -- the saver under test -------------------------------------------------------------------


@pytest.fixture
async def saver_kit(
    saver_kind: str, tmp_path: Any, request: pytest.FixtureRequest
) -> AsyncIterator[SaverKit]:
    use_async = saver_kind in ASYNC_KINDS
    if saver_kind == "memory":
        saver = InMemorySaver()
        yield SaverKit(saver_kind, saver, Api(saver, use_async=False))
        return

    if saver_kind.startswith("sqlite"):
        from threadloom.checkpoint.sqlite import SqliteSaver
        from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = str(tmp_path / "checkpoints.db")
        counter = iter(range(1_000_000))

        def fresh_sqlite() -> tuple[str, str]:
            return ("sqlite", str(tmp_path / f"fresh-{next(counter)}.db"))

        common = {
            "spec": ("sqlite", path),
            "raw_sql": _sqlite_raw_sql(path),
            "fresh_spec": fresh_sqlite,
        }
        if use_async:
            async with AsyncSqliteSaver.from_conn_string(path) as saver:
                yield SaverKit(saver_kind, saver, Api(saver, use_async=True), **common)
        else:
            with SqliteSaver.from_conn_string(path) as saver:
                yield SaverKit(saver_kind, saver, Api(saver, use_async=False), **common)
        return

    require_postgres()
    from threadloom.checkpoint.postgres import PostgresSaver
    from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

    schemas = request.getfixturevalue("pg_schemas")
    url = schemas()
    common = {
        "spec": ("postgres", url),
        "raw_sql": _pg_raw_sql(url),
        "fresh_spec": lambda: ("postgres", schemas()),
    }
    if use_async:
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield SaverKit(saver_kind, saver, Api(saver, use_async=True), **common)
    else:
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield SaverKit(saver_kind, saver, Api(saver, use_async=False), **common)


@pytest.fixture
def saver(saver_kit: SaverKit) -> Any:
    """The saver object itself, for tests that want it directly."""
    return saver_kit.saver


# -- backend specifics (beyond the shared suite) --------------------------------------------


def test_sqlite_in_memory_and_caller_transaction(tmp_path: Any) -> None:
    """``:memory:`` works; a caller's open transaction is joined with a savepoint."""
    from checkpoint_conformance import cfg, make_cp

    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(":memory:") as saver:
        c = saver.put(cfg("t"), make_cp({"a": [1]}, {"a": "1"}), {"source": "input"}, {"a": "1"})
        assert saver.get_tuple(c).checkpoint["channel_values"] == {"a": [1]}  # type: ignore[union-attr]

    conn = sqlite3.connect(str(tmp_path / "legacy.db"), check_same_thread=False)  # legacy mode
    saver = SqliteSaver(conn)
    saver.setup()
    conn.execute("CREATE TABLE mine (x INTEGER)")
    conn.execute("INSERT INTO mine VALUES (1)")  # the caller's implicit transaction is open
    assert conn.in_transaction
    saver.put(cfg("t"), make_cp({}, {}), {"source": "input"}, {})
    conn.rollback()  # ... rolls back the caller's work and the checkpoint with it
    assert saver.get_tuple(cfg("t")) is None
    saver.put(cfg("t"), make_cp({}, {}), {"source": "input"}, {})
    assert saver.get_tuple(cfg("t")) is not None
    conn.close()


def test_sqlite_saver_shared_between_threads(tmp_path: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from checkpoint_conformance import cfg, make_cp

    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "threads.db")) as saver:

        def work(n: int) -> None:
            config = cfg(f"t{n}")
            items: list[int] = []
            for i in range(20):
                items = [*items, i]
                version = f"{i + 1:032d}"
                cp = make_cp({"items": items}, {"items": version})
                config = saver.put(config, cp, {"source": "loop", "step": i}, {"items": version})
                saver.put_writes(config, [("w", i)], "task")
            got = saver.get_tuple(cfg(f"t{n}"))
            assert got is not None and got.checkpoint["channel_values"]["items"] == items

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        assert sorted(saver.list_threads()) == sorted(f"t{n}" for n in range(8))


async def test_postgres_savers_on_pools(pg_schemas: Callable[[], str]) -> None:
    require_postgres()
    from checkpoint_conformance import _core_scenario
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    from threadloom.checkpoint.postgres import PostgresSaver
    from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

    url = pg_schemas()
    with ConnectionPool(url, min_size=1, max_size=3, open=True) as pool:
        saver = PostgresSaver(pool)
        saver.setup()
        await _core_scenario(Api(saver, use_async=False))
    async with AsyncConnectionPool(url, min_size=1, max_size=3, open=False) as apool:
        asaver = AsyncPostgresSaver(apool)
        await asaver.setup()
        await _core_scenario(Api(asaver, use_async=True))


def test_encrypted_serializer_keeps_deltas(tmp_path: Any) -> None:
    """Fingerprints use the plaintext encoding, so encrypted savers still store deltas
    (once the list is longer than ``SMALL_LIST``: shorter ones are stored whole)."""
    pytest.importorskip("cryptography")
    from checkpoint_conformance import cfg, make_cp

    from threadloom.checkpoint._values.delta import SMALL_LIST
    from threadloom.checkpoint.serde import EncryptedSerializer
    from threadloom.checkpoint.sqlite import SqliteSaver

    serde = EncryptedSerializer.from_aes_gcm(b"k" * 32)
    with SqliteSaver.from_conn_string(str(tmp_path / "enc.db"), serde=serde) as saver:
        config, items = cfg("t"), []
        for i in range(30):
            items = [*items, f"secret item {i}"]
            version = f"{i + 1:032d}"
            cp = make_cp({"items": items}, {"items": version})
            config = saver.put(config, cp, {"source": "loop", "step": i}, {"items": version})
        got = saver.get_tuple(cfg("t"))
        assert got is not None and got.checkpoint["channel_values"]["items"] == items
        rows = saver.conn.execute(
            "SELECT type, blob, base_version FROM threadloom_blobs ORDER BY version"
        ).fetchall()
        assert sum(r[2] is not None for r in rows) == 29 - SMALL_LIST
        assert all("+" in r[0] and b"secret" not in r[1] for r in rows)
        plain = SqliteSaver(saver.conn)
        plain.serde = serde  # replacing the serializer after construction works too
        assert plain.get_tuple(cfg("t")).checkpoint["channel_values"]["items"] == items  # type: ignore[union-attr]


# -- durability, run locks, round trips, the value cache ------------------------------------


def test_sqlite_durability(tmp_path: Any) -> None:
    """WAL + synchronous=NORMAL by default; durability="full" keeps an fsync per commit."""
    from threadloom.checkpoint.sqlite import SqliteSaver

    for durability, level in (("normal", 1), ("full", 2)):
        path = str(tmp_path / f"{durability}.db")
        with SqliteSaver.from_conn_string(path, durability=durability) as saver:
            assert saver.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert saver.conn.execute("PRAGMA synchronous").fetchone()[0] == level
    with SqliteSaver.from_conn_string(str(tmp_path / "default.db")) as saver:
        assert saver.durability == "normal"
    with pytest.raises(ValueError, match="durability"):
        SqliteSaver(sqlite3.connect(":memory:"), durability="fast")  # type: ignore[arg-type]


def test_sqlite_run_locks_are_bytes_of_one_file(tmp_path: Any) -> None:
    """A run lock is a byte of ``<database>-runs.lock``: no file is made or removed per run;
    another saver on the file (another description) is refused while it is held."""
    from threadloom.checkpoint.sqlite import SqliteSaver, _locks
    from threadloom.errors import CheckpointConflictError

    if not _locks._OFD:
        pytest.skip("no open-file-description locks here: run locks are files per thread")
    path = tmp_path / "db.sqlite"
    with SqliteSaver.from_conn_string(str(path)) as saver, \
            SqliteSaver.from_conn_string(str(path)) as other:
        with saver.lock_thread("t 1/../x"):  # any thread id: only its hash picks the byte
            assert (tmp_path / "db.sqlite-runs.lock").stat().st_size == 0
            with pytest.raises(CheckpointConflictError), other.lock_thread("t 1/../x"):
                pytest.fail("a second saver got in")
            with other.lock_thread("t 2"):  # another thread id: another byte
                pass
        with other.lock_thread("t 1/../x"):
            pass
    assert not (tmp_path / "db.sqlite-locks").exists()
    with SqliteSaver.from_conn_string(":memory:") as mem, mem.lock_thread("t"):
        with pytest.raises(CheckpointConflictError), mem.lock_thread("t"):
            pass


def test_sqlite_run_lock_files_where_byte_locks_are_missing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without open-file-description locks each thread id has a lock file, removed once
    released."""
    from threadloom.checkpoint.sqlite import SqliteSaver, _locks
    from threadloom.errors import CheckpointConflictError

    monkeypatch.setattr(_locks, "_OFD", False)
    path = tmp_path / "db.sqlite"
    with SqliteSaver.from_conn_string(str(path)) as saver, \
            SqliteSaver.from_conn_string(str(path)) as other:
        with saver.lock_thread("t 1/../x"):
            files = list((tmp_path / "db.sqlite-locks").iterdir())
            assert len(files) == 1 and len(files[0].name) == len("0" * 32 + ".lock")
            with pytest.raises(CheckpointConflictError), other.lock_thread("t 1/../x"):
                pytest.fail("a second saver got in")
        assert list((tmp_path / "db.sqlite-locks").iterdir()) == []
    assert not (tmp_path / "db.sqlite-runs.lock").exists()


def _lock_in_child(saver: Any, thread_id: str, results: Any) -> None:
    from threadloom.errors import CheckpointConflictError

    saver._runs = type(saver._runs)()  # the parent's in-process guard stayed behind
    try:
        with saver.lock_thread(thread_id):
            results.put("got in")
    except CheckpointConflictError:
        results.put("refused")


def test_sqlite_run_lock_of_a_forked_child_is_its_own(tmp_path: Any) -> None:
    """A child forked while its parent holds a thread, using the saver it inherited, is
    refused: it locks through a description of its own, not the one it shares."""
    import multiprocessing

    from threadloom.checkpoint.sqlite import SqliteSaver

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    with SqliteSaver.from_conn_string(str(tmp_path / "db.sqlite")) as saver:
        with saver.lock_thread("t"):
            child = ctx.Process(target=_lock_in_child, args=(saver, "t", results))
            child.start()
            child.join(timeout=60)
            assert results.get(timeout=10) == "refused"
        child = ctx.Process(target=_lock_in_child, args=(saver, "t", results))
        child.start()
        child.join(timeout=60)
        assert results.get(timeout=10) == "got in"


def test_hot_path_round_trips(tmp_path: Any) -> None:
    """put: one batch; put_writes: one batch; get_tuple: one statement when the values
    are cached, two when they are not (checkpoint + writes, then values and chains)."""
    from checkpoint_conformance import Thread, cfg

    from threadloom.checkpoint.sqlite import SqliteSaver

    steps: list[str] = []

    def trace(event: TraceEvent) -> None:  # "q": a statement, "b<n>": a batch of n
        steps.append("q" if event.kind == "query" else f"b{len(event.statements)}")

    with SqliteSaver.from_conn_string(str(tmp_path / "rt.db"), trace=trace) as saver:
        api = Api(saver, use_async=False)
        t = Thread(api, "rt")
        import asyncio

        for i in range(5):
            asyncio.run(t.put(messages=[f"m{j}" for j in range(i + 1)], n=i))
        steps.clear()
        asyncio.run(t.put(messages=[f"m{j}" for j in range(6)], n=5))  # a delta
        assert steps == ["b4"]  # status query, value insert, thread row, checkpoint insert
        steps.clear()
        saver.put_writes(t.config, [("a", 1), ("__interrupt__", 2)], "task")
        assert steps == ["b2"]  # regular + special writes, together
        steps.clear()
        got = saver.get_tuple(cfg("rt"))
        assert got is not None and got.checkpoint["channel_values"]["n"] == 5
        assert steps == ["q"]
        saver.clear_cache()
        steps.clear()
        again = saver.get_tuple(cfg("rt"))
        assert again is not None and again.checkpoint == got.checkpoint
        assert steps == ["q", "b1"]


def test_value_cache_keeps_scalar_values_decoded(tmp_path: Any) -> None:
    """An immutable scalar (None, a bool, number, string or bytes) read once is kept as it
    was decoded: later reads - listings and ``get_tuple`` - hand it out without decoding
    its row again. Lists and dicts are still decoded or thawed anew for every reader."""
    from checkpoint_conformance import cfg, make_cp

    from threadloom.checkpoint.serde.msgpack import MsgpackSerializer
    from threadloom.checkpoint.sqlite import SqliteSaver

    decoded: list[Any] = []

    class Counting(MsgpackSerializer):
        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            value = super().loads_typed(data)
            decoded.append(value)
            return value

    scalars = {"n": 7, "x": 0.5, "s": "text", "b": b"raw", "f": True, "z": None}
    with SqliteSaver.from_conn_string(str(tmp_path / "sc.db"), serde=Counting()) as saver:
        c = cfg("t")
        for i in range(3):
            values = {**scalars, "items": [i]}
            versions = {ch: f"{i + 1:032d}" for ch in values}
            c = saver.put(c, make_cp(values, versions), {"source": "loop", "step": i}, versions)
        first = list(saver.list(None))
        decoded.clear()
        second = list(saver.list(None))
        got = saver.get_tuple(cfg("t"))
        assert got is not None
        assert [t.checkpoint["channel_values"] for t in second] == [
            t.checkpoint["channel_values"] for t in first
        ]
        assert got.checkpoint["channel_values"] == {**scalars, "items": [2]}
        assert not [v for v in decoded if type(v) is not dict and not isinstance(v, list)]
        assert [v for v in decoded if isinstance(v, list)]  # the lists: decoded anew
        a, b = second[0].checkpoint["channel_values"], first[0].checkpoint["channel_values"]
        assert a["items"] == b["items"] and a["items"] is not b["items"]


def test_a_listing_hands_each_checkpoint_its_own_list_of_a_shared_version(tmp_path: Any) -> None:
    """Checkpoints of one page naming the same version of a list channel (it did not
    change between them) each get a list of their own, from the value cache or not."""
    from checkpoint_conformance import cfg, make_cp

    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "sh.db")) as saver:
        c = cfg("t")
        v1 = f"{1:032d}"
        for i in range(3):
            n = f"{i + 1:032d}"
            new = {"items": v1, "n": n} if i == 0 else {"n": n}
            cp = make_cp({"items": [{"k": 1}], "n": i}, {"items": v1, "n": n})
            c = saver.put(c, cp, {"source": "loop", "step": i}, new)
        for _ in range(2):  # from the rows put, then with the cache emptied
            tuples = list(saver.list(None))
            lists = [t.checkpoint["channel_values"]["items"] for t in tuples]
            assert lists == [[{"k": 1}]] * 3
            assert len({id(x) for x in lists}) == 3
            lists[0].append("mine")
            assert lists[1] == lists[2] == [{"k": 1}]
            saver.clear_cache()

def test_value_cache_hands_out_copies(tmp_path: Any) -> None:
    from checkpoint_conformance import cfg, make_cp

    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "vc.db")) as saver:
        c = cfg("t")
        items: list[Any] = []
        for i in range(4):
            items = [*items, {"i": i}]
            v = f"{i + 1:032d}"
            c = saver.put(c, make_cp({"items": items, "d": {"k": i}}, {"items": v, "d": v}),
                          {"source": "loop", "step": i}, {"items": v, "d": v})  # fmt: skip
        first = saver.get_tuple(cfg("t"))
        assert first is not None
        values = first.checkpoint["channel_values"]
        values["items"].append("mine")  # the caller's list and dict are its own
        values["d"]["k"] = "changed"
        second = saver.get_tuple(cfg("t"))
        assert second is not None
        assert second.checkpoint["channel_values"] == {"items": items, "d": {"k": 3}}
        assert len(saver.value_cache) > 0 and saver.value_cache.bytes > 0
        saver.value_cache.max_bytes = 0  # disabled: every read goes to the database
        saver.clear_cache()
        third = saver.get_tuple(cfg("t"))
        assert third is not None and third.checkpoint["channel_values"]["items"] == items
        assert len(saver.value_cache) == 0
        saver.delete_thread("t")
        assert saver.get_tuple(cfg("t")) is None


async def test_postgres_pool_run_lock(pg_schemas: Callable[[], str]) -> None:
    """A pool-backed saver takes run locks on its own connection, not a pooled one."""
    require_postgres()
    from psycopg_pool import ConnectionPool

    from threadloom.checkpoint.postgres import PostgresSaver
    from threadloom.errors import CheckpointConflictError

    url = pg_schemas()
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        saver = PostgresSaver(pool)
        saver.setup()
        with saver.lock_thread("t"):
            saver.list_threads()  # the single pooled connection is still free
            with PostgresSaver.from_conn_string(url) as other:
                with pytest.raises(CheckpointConflictError), other.lock_thread("t"):
                    pass
        with PostgresSaver.from_conn_string(url) as other, other.lock_thread("t"):
            pass
        saver.close_run_locks()


# -- durability="async" on Postgres: relaxed commits, one flush when the run ends -------------


def _three_step_graph(saver: Any) -> Any:
    from typing import TypedDict

    from threadloom.graph import END, START, StateGraph

    class S(TypedDict):
        n: int

    builder = StateGraph(S)
    builder.add_node("a", lambda s: {"n": s["n"] + 1})
    builder.add_node("b", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder.compile(checkpointer=saver)


class _Statements:
    """Records the SQL the Postgres savers send, through their trace hook
    (``threadloom.checkpoint.trace``): batches on the data connection, writes sent ahead
    on the run session, run-lock releases. Pass it as the saver's ``trace``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []  # on the data connection
        self.ahead: list[list[str]] = []  # writes sent ahead on the run session
        self.unlocks: list[bool] = []  # one per released run lock: flushed?

    def __call__(self, event: TraceEvent) -> None:
        if event.connection == "data":
            if event.kind == "batch":
                self.batches.append(list(event.statements))
        elif event.kind == "send":
            if any("INSERT" in sql for sql in event.statements):
                self.ahead.append(list(event.statements))
        else:  # a wait on the run session: a run-lock statement, alone or with writes
            self.unlocks += [
                "txid_current" in sql for sql in event.statements if "advisory_unlock" in sql
            ]

    @staticmethod
    def relaxed(batches: list[list[str]]) -> list[bool]:
        """Per write: did it commit relaxed?"""
        return [any("set_config('synchronous_commit', 'off'" in sql for sql in b) for b in batches]

    @staticmethod
    def write_locked(batches: list[list[str]]) -> list[bool]:
        """Per write: did it take the thread's write lock (an advisory transaction lock)?"""
        return [any("pg_advisory_xact_lock" in sql for sql in b) for b in batches]

    def clear(self) -> None:
        self.batches.clear(), self.ahead.clear(), self.unlocks.clear()


def test_async_durability_relaxes_commits_and_flushes_at_release(
    pg_schemas: Callable[[], str],
) -> None:
    """durability="async" (the default): the run's writes commit relaxed and are sent
    ahead on the run session without waiting; the release of the run lock flushes them.
    The head read came with the run lock: the data connection is not used at all."""
    require_postgres()
    from threadloom.checkpoint.postgres import PostgresSaver

    seen = _Statements()
    with PostgresSaver.from_conn_string(pg_schemas(), trace=seen) as saver:
        saver.setup()
        graph = _three_step_graph(saver)
        seen.clear()
        config = {"configurable": {"thread_id": "async"}}
        assert graph.invoke({"n": 0}, config) == {"n": 2}  # durability="async" by default
        # the input with its input task's writes (one batch), start, a, b
        assert seen.relaxed(seen.ahead) == [True] * 4
        assert seen.write_locked(seen.ahead) == [False] * 4  # the run lock is enough
        assert any("INSERT INTO threadloom_writes" in sql for sql in seen.ahead[0])
        assert seen.batches == []
        assert seen.unlocks == [True]  # one flush, before invoke returned
        assert not saver._runs._unflushed and not saver._lock_session.sent  # type: ignore[union-attr]

        seen.clear()
        graph.invoke({"n": 0}, {"configurable": {"thread_id": "sync"}}, durability="sync")
        assert seen.ahead == [] and seen.unlocks == [False]
        assert seen.relaxed(seen.batches) == [False] * 4
        assert seen.write_locked(seen.batches) == [False] * 4

        # a state edit holds the run lock too, and is durable when update_state returns
        seen.clear()
        graph.update_state(config, {"n": 10})
        assert seen.relaxed(seen.ahead) == [True] and seen.unlocks == [True]

        # a write that says "async" but is made outside a run lock is never relaxed, and
        # takes the write lock
        head = saver.get_tuple(config)
        assert head is not None
        conf = {"configurable": {**head.config["configurable"], "__threadloom_durability": "async"}}
        seen.clear()
        saver.put_writes(conf, [("n", 1)], "task")
        assert seen.ahead == [] and seen.relaxed(seen.batches) == [False]
        assert graph.get_state(config).values == {"n": 10}


async def test_async_durability_on_the_async_saver(pg_schemas: Callable[[], str]) -> None:
    require_postgres()
    from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

    seen = _Statements()
    async with AsyncPostgresSaver.from_conn_string(pg_schemas(), trace=seen) as saver:
        await saver.setup()
        graph = _three_step_graph(saver)
        seen.clear()
        config = {"configurable": {"thread_id": "t"}}
        assert await graph.ainvoke({"n": 0}, config) == {"n": 2}
        # as on the sync saver: the input with its input task's writes (one batch), start,
        # a, b, sent ahead on the run session, the head read with the lock
        assert seen.relaxed(seen.ahead) == [True] * 4 and seen.unlocks == [True]
        assert any("INSERT INTO threadloom_writes" in sql for sql in seen.ahead[0])
        assert seen.batches == []
        assert not saver._runs._unflushed and not saver._lock_session.sent  # type: ignore[union-attr]
        seen.clear()
        await graph.ainvoke({"n": 5}, config, durability="exit")
        assert seen.relaxed(seen.batches) == [False] and seen.unlocks == [False]
        assert (await graph.aget_state(config)).values == {"n": 7}


def test_postgres_durability_full_flushes_every_commit(pg_schemas: Callable[[], str]) -> None:
    """durability="full": even a run with durability="async" commits every write with
    synchronous_commit on (a WAL flush each) on the data connection, waited for; nothing
    is sent ahead and the release needs no flush. A bad value is refused by name."""
    require_postgres()
    from threadloom.checkpoint.postgres import PostgresSaver

    seen = _Statements()
    with PostgresSaver.from_conn_string(pg_schemas(), durability="full", trace=seen) as saver:
        saver.setup()
        assert saver.durability == "full"
        graph = _three_step_graph(saver)
        seen.clear()
        config = {"configurable": {"thread_id": "full"}}
        assert graph.invoke({"n": 0}, config) == {"n": 2}
        assert seen.ahead == [] and seen.unlocks == [False]
        # the input with its input task's writes (one commit), start, a, b
        assert seen.relaxed(seen.batches) == [False] * 4
        assert graph.get_state(config).values == {"n": 2}
    with pytest.raises(ValueError, match="durability must be 'normal'.*got 'fast'"):
        PostgresSaver.from_conn_string(pg_schemas(), durability="fast").__enter__()  # type: ignore[arg-type]


async def test_async_postgres_durability_full_flushes_every_commit(
    pg_schemas: Callable[[], str],
) -> None:
    require_postgres()
    from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

    seen = _Statements()
    url = pg_schemas()
    async with AsyncPostgresSaver.from_conn_string(url, durability="full", trace=seen) as saver:
        await saver.setup()
        graph = _three_step_graph(saver)
        seen.clear()
        config = {"configurable": {"thread_id": "full"}}
        assert await graph.ainvoke({"n": 0}, config) == {"n": 2}
        assert seen.ahead == [] and seen.unlocks == [False]
        # the input with its input task's writes (one commit), start, a, b
        assert seen.relaxed(seen.batches) == [False] * 4
    with pytest.raises(ValueError, match="durability must be 'normal'"):
        AsyncPostgresSaver(saver.conn, durability="always")  # type: ignore[arg-type]


def test_flush_still_happens_when_the_lock_session_died(pg_schemas: Callable[[], str]) -> None:
    """If the run-lock connection is gone by the end of the run (its locks went with it),
    the relaxed commits are flushed through the data connection instead."""
    require_postgres()
    from threadloom.checkpoint.postgres import PostgresSaver

    executed: list[str] = []

    def trace(event: TraceEvent) -> None:
        if event.connection == "data":
            executed.extend(event.statements)

    from typing import TypedDict

    from threadloom.graph import END, START, StateGraph

    class S(TypedDict):
        n: int

    with PostgresSaver.from_conn_string(pg_schemas(), trace=trace) as saver:
        saver.setup()

        def step(state: S) -> S:
            if state["n"] == 0:  # the first run: the lock session dies while it runs
                saver._lock_session.conn.close()  # type: ignore[union-attr]
            return {"n": state["n"] + 1}

        builder = StateGraph(S)
        builder.add_node("step", step)
        builder.add_edge(START, "step")
        builder.add_edge("step", END)
        graph = builder.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "t"}}
        assert graph.invoke({"n": 0}, config) == {"n": 1}
        assert "SELECT txid_current()" in executed
        assert not saver._runs._unflushed
        assert graph.invoke({"n": 5}, config) == {"n": 6}  # a new lock session next run


def test_node_returning_message_text_on_sqlite(tmp_path: Any) -> None:
    """langchain_core's ``AIMessage.text`` is a ``str`` subclass: a node returning it is
    checkpointed (as a ``str``), not refused."""
    from typing import TypedDict

    from langchain_core.messages import AIMessage

    from threadloom.checkpoint.sqlite import SqliteSaver
    from threadloom.graph import START, StateGraph

    class State(TypedDict):
        summary: str

    def summarize(state: State) -> dict[str, Any]:
        return {"summary": AIMessage("a short summary").text}

    config = {"configurable": {"thread_id": "t"}}
    with SqliteSaver.from_conn_string(str(tmp_path / "db.sqlite")) as saver:
        builder = StateGraph(State).add_node(summarize).add_edge(START, "summarize")
        graph = builder.compile(checkpointer=saver)
        assert graph.invoke({"summary": ""}, config) == {"summary": "a short summary"}
    with SqliteSaver.from_conn_string(str(tmp_path / "db.sqlite")) as saver:
        graph = builder.compile(checkpointer=saver)
        values = graph.get_state(config).values
        assert values == {"summary": "a short summary"} and type(values["summary"]) is str


# -- the trace hook (threadloom.checkpoint.trace) ----------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "sqlite_async", "postgres", "postgres_async"])
async def test_the_trace_hook_sees_what_its_saver_sends_and_nothing_else(
    kind: str, tmp_path: Any, pg_schemas: Callable[[], str]
) -> None:
    """Each statement or batch a saver runs reaches its own trace hook - the SQL text,
    never the parameters - and a second saver on the same storage, without one, runs
    the same without reporting anything to it."""
    events: list[TraceEvent] = []
    if kind.startswith("sqlite"):
        from threadloom.checkpoint.sqlite import SqliteSaver
        from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

        target = str(tmp_path / "traced.sqlite")
        opener: Any = AsyncSqliteSaver if kind == "sqlite_async" else SqliteSaver
    else:
        require_postgres()
        from threadloom.checkpoint.postgres import PostgresSaver
        from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

        target = pg_schemas()
        opener = AsyncPostgresSaver if kind == "postgres_async" else PostgresSaver

    async def run(trace: Any, thread: str) -> None:
        if kind.endswith("async"):
            async with opener.from_conn_string(target, trace=trace) as saver:
                if kind == "postgres_async":
                    await saver.setup()
                graph = _three_step_graph(saver)
                assert await graph.ainvoke({"n": 41}, {"configurable": {"thread_id": thread}})
        else:
            with opener.from_conn_string(target, trace=trace) as saver:
                saver.setup()
                graph = _three_step_graph(saver)
                assert graph.invoke({"n": 41}, {"configurable": {"thread_id": thread}})

    await run(events.append, "secret-thread")
    assert {e.connection for e in events} == (
        {"data"} if kind.startswith("sqlite") else {"data", "run"}
    )
    sent = [sql for e in events for sql in e.statements]
    assert any("CREATE TABLE" in sql for sql in sent)  # the schema's set-up too
    assert any("INSERT INTO threadloom_checkpoints" in sql for sql in sent)
    for event in events:
        assert event.statements and all(isinstance(sql, str) for sql in event.statements)
        assert not any("secret-thread" in sql or "41" in sql for sql in event.statements)
    if kind.startswith("postgres"):  # durability="async": writes sent ahead, one wait
        assert any(e.kind == "send" for e in events)
        assert any(e.kind == "pipeline" and e.transactions >= 1 for e in events)
    seen = len(events)
    await run(None, "another")
    assert len(events) == seen
