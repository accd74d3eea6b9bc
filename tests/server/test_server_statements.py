"""How many statements the approval round trip costs the server storage on PostgreSQL,
counted in the client (counts are deterministic, timings are not): queueing a run (the
API process) and ending one (a worker) - what ``bench/server.py`` pays per round trip.
Also what the fewer statements must still do: a thread's metadata tags written with its
first run even when its metadata changed since it was read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.server.conftest import API_KEYS, GRAPHS, HERE
from tests.server.test_server_storage_end_run import (  # the same storages and records
    _queue,
    _thread,
    storage_factory,
)
from threadloom.server.records import new_id, now_iso

__all__ = ["storage_factory"]  # a fixture, used by name

psycopg = pytest.importorskip("psycopg")


def _own(sent: list[tuple[str, str]]) -> list[str]:
    """The SQL of ``sent_statements`` but that of the server's own background tasks
    (``threadloom-*``: notifications, crons, TTLs)."""
    return [sql for task, sql in sent if not task.startswith("threadloom-")]


@pytest.fixture
def api_only(fresh_postgres_database: str) -> Iterator[str]:
    """An API process on PostgreSQL with no worker in it (the runs it queues wait)."""
    from threadloom.server import background_server, load_config

    cfg = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                      database=fresh_postgres_database)
    with background_server(cfg, run_worker=False) as base:
        yield str(base)


def test_queueing_a_run_is_two_statements(api_only: str,
                                          sent_statements: list[tuple[str, str]]) -> None:
    """The thread and the assistant in one read, then the run with the thread's
    metadata tags (its first run) in one write."""
    from langgraph_sdk import get_client

    async def scenario() -> None:
        client = get_client(url=api_only, api_key="key-alice", timeout=30)
        thread = await client.threads.create()
        sent_statements.clear()
        await client.runs.create(thread["thread_id"], "payment", input={"amount": 10})
        assert len(_own(sent_statements)) == 2, _own(sent_statements)
        sent_statements.clear()
        await client.runs.create(thread["thread_id"], "payment", input={"amount": 5})
        assert len(_own(sent_statements)) == 2, _own(sent_statements)
        stored = await client.threads.get(thread["thread_id"])
        assert stored["metadata"]["graph_id"] == "payment"
        assert stored["metadata"]["assistant_id"]

    asyncio.run(scenario())


def test_ending_a_run_is_one_statement(fresh_postgres_database: str,
                                      sent_statements: list[tuple[str, str]]) -> None:
    from threadloom.server.storage.postgres import PostgresStorage

    async def scenario() -> None:
        storage = PostgresStorage(fresh_postgres_database)
        await storage.setup()
        try:
            run_id = await _queue(storage, await _thread(storage))
            await storage.claim_run("w", 30.0)
            sent_statements.clear()
            await storage.end_run(run_id, "success", thread={"status": "idle"},
                                  events=[("__result__", b"null")], keep=False)
            assert [s.split()[0] for s in _own(sent_statements)] == ["WITH"]
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_a_runs_tags_reach_metadata_changed_since_it_was_read(storage_factory) -> None:
    """``create_run``'s metadata keys are merged into what is stored, also when that is
    no longer what the caller read: nothing written in between is lost."""
    async def scenario() -> None:
        storage = await storage_factory()
        try:
            tid = await _thread(storage)
            seen = (await storage.get_thread(tid))["metadata"]
            await storage.update_thread(tid, metadata={"owner": "bob"})  # meanwhile
            now = now_iso()
            tags = {"graph_id": "payment", "assistant_id": "a"}
            for strategy in ("enqueue", "reject"):
                tid2 = tid if strategy == "enqueue" else await _thread(storage)
                if strategy == "reject":
                    seen = (await storage.get_thread(tid2))["metadata"]
                    await storage.update_thread(tid2, metadata={"owner": "bob"})
                await storage.create_run(
                    {"run_id": new_id(), "thread_id": tid2, "assistant_id": "a",
                     "created_at": now, "updated_at": now, "metadata": {}, "kwargs": {},
                     "run_at": 0.0},
                    multitask_strategy=strategy, thread_metadata=(seen, tags),
                )
                stored = await storage.get_thread(tid2)
                assert stored["metadata"] == {"owner": "bob", **tags}
                assert stored["status"] == "busy"
        finally:
            await storage.close()

    asyncio.run(scenario())
