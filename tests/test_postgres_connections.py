"""PostgreSQL savers on the connection shapes users give them: a pool, a connection in
pipeline mode. Every test here drops its database afterwards without FORCE, so a
connection the saver left open fails the test."""

from __future__ import annotations

import time
from typing import TypedDict

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from threadloom.checkpoint.postgres import PostgresSaver
from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver
from threadloom.graph import END, START, StateGraph


class State(TypedDict):
    n: int


def counter():
    builder = StateGraph(State)
    builder.add_node("inc", lambda state: {"n": state["n"] + 1})
    builder.add_edge(START, "inc")
    builder.add_edge("inc", END)
    return builder


def connections_to(url: str, *, settle_at: int) -> int:
    """How many sessions the server has on ``url``'s database, once that number reached
    ``settle_at`` or 5 s passed (a backend leaves the list shortly after its client
    closes)."""
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    deadline = time.monotonic() + 5
    with psycopg.connect(admin, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
            count = int(row[0]) if row else 0
            if count == settle_at or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


def test_pool_backed_saver_leaves_no_connection_once_the_pool_closes(
    fresh_postgres_database: str,
) -> None:
    with ConnectionPool(fresh_postgres_database, max_size=4, kwargs={"autocommit": True}) as pool:
        saver = PostgresSaver(pool)
        saver.setup()
        graph = counter().compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "t"}}
        assert graph.invoke({"n": 1}, cfg) == {"n": 2}
        assert graph.invoke({"n": 5}, cfg) == {"n": 6}
        # between runs the saver holds no connection of its own: only the pool's are open
        size = pool.get_stats()["pool_size"]
        assert connections_to(fresh_postgres_database, settle_at=size) == size
    assert connections_to(fresh_postgres_database, settle_at=0) == 0


async def test_async_pool_backed_saver_leaves_no_connection_once_the_pool_closes(
    fresh_postgres_database: str,
) -> None:
    async with AsyncConnectionPool(
        fresh_postgres_database, max_size=4, kwargs={"autocommit": True}
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        graph = counter().compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "t"}}
        assert await graph.ainvoke({"n": 1}, cfg) == {"n": 2}
        assert await graph.ainvoke({"n": 5}, cfg) == {"n": 6}
    assert connections_to(fresh_postgres_database, settle_at=0) == 0


async def test_async_pool_backed_saver_may_keep_its_run_lock_connection(
    fresh_postgres_database: str,
) -> None:
    """keep_lock_connection: one run-lock connection for every run (no connect per run),
    closed by aclose_run_locks."""
    async with AsyncConnectionPool(
        fresh_postgres_database, max_size=4, kwargs={"autocommit": True}
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        saver.keep_lock_connection = True
        await saver.setup()
        graph = counter().compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "t"}}
        assert await graph.ainvoke({"n": 1}, cfg) == {"n": 2}
        kept = saver._lock_session
        assert kept is not None and not kept.conn.closed
        assert await graph.ainvoke({"n": 5}, {"configurable": {"thread_id": "u"}}) == {"n": 6}
        assert saver._lock_session is kept  # the same connection served the second run
        await saver.aclose_run_locks()
        assert kept.conn.closed
    assert connections_to(fresh_postgres_database, settle_at=0) == 0


def test_saver_on_a_connection_in_pipeline_mode(fresh_postgres_database: str) -> None:
    with PostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        saver.setup()
        with saver.conn.pipeline():
            graph = counter().compile(checkpointer=saver)
            cfg = {"configurable": {"thread_id": "t"}}
            assert graph.invoke({"n": 1}, cfg) == {"n": 2}
            assert graph.invoke({"n": 5}, cfg) == {"n": 6}
            assert graph.get_state(cfg).values == {"n": 6}
            assert len(list(graph.get_state_history(cfg))) == 6


def committed_checkpoints(url: str) -> int:
    """Checkpoints another session sees: what the saver's connection committed."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM threadloom_checkpoints").fetchone()
        return int(row[0]) if row else 0


def test_exit_durability_on_a_connection_in_pipeline_mode_commits_its_checkpoint(
    fresh_postgres_database: str,
) -> None:
    # the run's one write is a lone statement: it still needs a Sync of its own
    with PostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        saver.setup()
        with saver.conn.pipeline():
            graph = counter().compile(checkpointer=saver)
            cfg = {"configurable": {"thread_id": "t"}}
            assert graph.invoke({"n": 1}, cfg, durability="exit") == {"n": 2}
            assert committed_checkpoints(fresh_postgres_database) == 1
            assert graph.invoke({"n": 5}, cfg, durability="exit") == {"n": 6}
            assert committed_checkpoints(fresh_postgres_database) == 2


async def test_async_exit_durability_on_a_connection_in_pipeline_mode_commits(
    fresh_postgres_database: str,
) -> None:
    async with AsyncPostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        await saver.setup()
        async with saver.conn.pipeline():
            graph = counter().compile(checkpointer=saver)
            cfg = {"configurable": {"thread_id": "t"}}
            assert await graph.ainvoke({"n": 1}, cfg, durability="exit") == {"n": 2}
            assert committed_checkpoints(fresh_postgres_database) == 1


def stepper():
    builder = StateGraph(State)
    for name in ("one", "two", "three"):
        builder.add_node(name, lambda state: {"n": state["n"] + 1})
    builder.add_edge(START, "one")
    builder.add_edge("one", "two")
    builder.add_edge("two", "three")
    builder.add_edge("three", END)
    return builder


def test_saver_in_pipeline_mode_commits_each_write_for_the_next_run(
    fresh_postgres_database: str,
) -> None:
    # durability="sync"/"exit" write on the caller's pipelined connection: each write
    # must be committed (synced) there, or the next run (whose first read goes over the
    # run-lock connection) finds no checkpoint to resume
    for durability in ("sync", "exit"):
        with PostgresSaver.from_conn_string(fresh_postgres_database) as saver:
            saver.setup()
            with saver.conn.pipeline():
                graph = stepper().compile(checkpointer=saver, interrupt_after="*")
                cfg = {"configurable": {"thread_id": durability}}
                graph.invoke({"n": 0}, cfg, durability=durability)
                assert graph.get_state(cfg).next == ("two",)
                assert graph.invoke(None, cfg, durability=durability) == {"n": 2}
                assert graph.invoke(None, cfg, durability=durability) == {"n": 3}
                assert graph.get_state(cfg).next == ()
        with PostgresSaver.from_conn_string(fresh_postgres_database) as other:
            saved = list(other.list({"configurable": {"thread_id": durability}}))
        assert len(saved) == (5 if durability == "sync" else 3)


async def test_async_saver_in_pipeline_mode_commits_each_write_for_the_next_run(
    fresh_postgres_database: str,
) -> None:
    async with AsyncPostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        await saver.setup()
        async with saver.conn.pipeline():
            graph = stepper().compile(checkpointer=saver, interrupt_after="*")
            cfg = {"configurable": {"thread_id": "t"}}
            await graph.ainvoke({"n": 0}, cfg, durability="sync")
            assert await graph.ainvoke(None, cfg, durability="sync") == {"n": 2}
            assert await graph.ainvoke(None, cfg, durability="sync") == {"n": 3}
            assert (await graph.aget_state(cfg)).next == ()
