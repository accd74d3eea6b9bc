"""What the server storage does in one go: ``claim_runs`` (several runs per claim),
``publish_many`` (several events per write), the executor's outbox writing a run's
events in batches on a shared storage, thread updates merging concurrent writes, and the
pool of a worker process - on SQLite and on PostgreSQL where both apply."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.server.test_server_storage_end_run import (  # the same storages and records
    _drain,
    _queue,
    _thread,
    api_and_worker,
    storage_factory,
)
from threadloom.server.records import new_id, now_iso

__all__ = ["storage_factory"]  # a fixture, used by name


def test_claim_runs_takes_several_oldest_first_never_two_of_one_thread(
    storage_factory,
) -> None:
    async def scenario() -> None:
        storage = await storage_factory()
        try:
            a, b, c = [await _thread(storage) for _ in range(3)]
            a1 = await _queue(storage, a)
            b1 = await _queue(storage, b)
            a2 = await _queue(storage, a)
            c1 = await _queue(storage, c)
            two = await storage.claim_runs("w", 30.0, 2)  # the limit holds
            assert [r["run_id"] for r in two] == [a1, b1]
            assert all(r["status"] == "running" and r["attempt"] == 1 for r in two)
            # a2 waits for a1 (same thread): only c1 is left to take
            assert [r["run_id"] for r in await storage.claim_runs("w", 30.0, 10)] == [c1]
            assert await storage.claim_runs("w", 30.0, 10) == []
            await storage.end_run(a1, "success", thread={"status": "idle"},
                                  events=[("__result__", b"null")], keep=False)
            assert [r["run_id"] for r in await storage.claim_runs("w", 30.0, 10)] == [a2]
            assert (await storage.get_run(b1))["status"] == "running"
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_a_sqlite_claim_finding_nothing_takes_no_write_lock(tmp_path) -> None:
    """Most claims find nothing (a worker looks again whenever a run ends): on SQLite
    they read, without taking the database's write lock - another process writing
    meanwhile neither blocks them nor is blocked - and take the lock only to claim."""
    import sqlite3

    from threadloom.server.storage.sqlite import SqliteStorage

    async def scenario() -> None:
        storage = SqliteStorage(str(tmp_path / "server.db"))
        await storage.setup()
        other = sqlite3.connect(tmp_path / "server.db", isolation_level=None)
        try:
            tid = await _thread(storage)
            other.execute("BEGIN IMMEDIATE")  # another process is writing
            assert await asyncio.wait_for(storage.claim_runs("w", 30.0, 4), 2.0) == []
            other.execute("COMMIT")
            run_id = await _queue(storage, tid)
            assert [r["run_id"] for r in await storage.claim_runs("w", 30.0, 4)] == [run_id]
            assert await storage.claim_runs("w", 30.0, 4) == []  # taken: it is running
        finally:
            other.close()
            await storage.close()

    asyncio.run(scenario())


def test_publish_many_appends_in_order(storage_factory) -> None:
    async def scenario() -> None:
        storage = await storage_factory()
        try:
            tid = await _thread(storage)
            run_id = await _queue(storage, tid)
            events = storage.subscribe(run_id, after=None)
            await storage.publish_many(
                run_id, [("metadata", b'{"n": 0}'), ("values", b'{"n": 1}'),
                         ("values", b'{"n": 2}')], keep=True,
            )
            await storage.publish_many(run_id, [], keep=True)  # nothing to write
            await storage.close_stream(run_id)
            got = await asyncio.wait_for(_drain(events), 10)
            assert got == [("metadata", {"n": 0}), ("values", {"n": 1}), ("values", {"n": 2})]
            # kept: replayed in the same order
            replay = await asyncio.wait_for(_drain(storage.subscribe(run_id, after="0")), 10)
            assert replay == got
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_concurrent_thread_updates_lose_no_write(storage_factory) -> None:
    """Each update merges into the record as it is when written: twenty at once, each
    adding its own metadata key, leave all twenty (on PostgreSQL a write finding the
    row changed since its read merges again)."""

    async def scenario() -> None:
        storage = await storage_factory()
        try:
            tid = await _thread(storage)
            results = await asyncio.gather(*(
                storage.update_thread(tid, metadata={f"k{i}": i}) for i in range(20)
            ))
            assert all(r is not None for r in results)
            metadata = (await storage.get_thread(tid))["metadata"]
            assert {k: metadata[k] for k in metadata if k.startswith("k")} == {
                f"k{i}": i for i in range(20)}
            assert await storage.update_thread(new_id(), metadata={"x": 1}) is None
        finally:
            await storage.close()

    asyncio.run(scenario())


def _written_batches(storage: Any) -> list[list[str]]:
    """The names of the events of each ``publish_many`` call on ``storage`` from now on
    (the real method still writes them)."""
    writes: list[list[str]] = []
    publish_many = storage.publish_many

    async def counted(run_id: str, events: Any, *, keep: bool) -> None:
        writes.append([e for e, _ in events])
        await publish_many(run_id, events, keep=keep)

    storage.publish_many = counted
    return writes


async def _outbox_of_a_queued_run(storage: Any) -> tuple[str, Any, Any]:
    """A run queued on a new thread: its id, a subscription to its events, and an
    executor's outbox for them."""
    from threadloom.server.executor import _Outbox

    run_id = await _queue(storage, await _thread(storage))
    return run_id, storage.subscribe(run_id, after=None), _Outbox(storage, run_id, keep=False)


def test_outbox_writes_a_runs_events_in_batches_in_order(
    fresh_postgres_database: str,
) -> None:
    """On PostgreSQL a run does not wait for each event to be written: what it
    publishes while a write is on the wire goes in the next one (fewer statements than
    events), in order; ``flush`` waits for them all."""
    from threadloom.server.storage.postgres import PostgresStorage

    async def scenario() -> None:
        storage = PostgresStorage(fresh_postgres_database)
        await storage.setup()
        writes = _written_batches(storage)
        try:
            run_id, events, outbox = await _outbox_of_a_queued_run(storage)
            for n in range(30):
                await outbox.put("values", json.dumps({"n": n}).encode())
            await outbox.flush()
            assert sum(map(len, writes)) == 30 and len(writes) < 30
            await storage.close_stream(run_id)
            got = await asyncio.wait_for(_drain(events), 10)
            assert got == [("values", {"n": n}) for n in range(30)]
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_outbox_hands_the_events_still_waiting_to_the_runs_end(
    fresh_postgres_database: str,
) -> None:
    """Events whose writer is still in its wait are not written by ``take`` but handed
    back, in order, for the run's end to carry; a batch already being written is
    written first."""
    from threadloom.server.storage.postgres import PostgresStorage

    async def scenario() -> None:
        storage = PostgresStorage(fresh_postgres_database)
        await storage.setup()
        writes = _written_batches(storage)
        try:
            run_id, events, outbox = await _outbox_of_a_queued_run(storage)
            outbox.delay = 0.0
            await outbox.put("metadata", b'{"n": 0}')
            while not outbox.writing:  # the first batch is on its way
                await asyncio.sleep(0.001)
            outbox.delay = 3600.0  # the next one waits (for the run's end)
            await outbox.writer  # type: ignore[misc]
            await outbox.put("values", b'{"n": 1}')
            await outbox.put("values", b'{"n": 2}')
            unsent = await outbox.take()
            assert writes == [["metadata"]]
            assert unsent == [("values", b'{"n": 1}'), ("values", b'{"n": 2}')]
            await storage.claim_runs("w", 30.0, 1)
            await storage.end_run(run_id, "success", thread={"status": "idle"},
                                  events=[*unsent, ("__result__", b"null")], keep=False)
            got = await asyncio.wait_for(_drain(events), 10)
            assert got == [("metadata", {"n": 0}), ("values", {"n": 1}),
                           ("values", {"n": 2}), ("__result__", None)]
            assert writes == [["metadata"]]
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_a_short_runs_events_go_with_its_end(fresh_postgres_database: str) -> None:
    """A run ending before its first event's writer is done waiting writes no event on
    its own: its events, output and end are one transaction (one ``at`` for all), and
    a client waiting on its stream gets every event, in order."""
    from langgraph_sdk import get_sync_client

    from tests.server.conftest import API_KEYS, GRAPHS, HERE
    from threadloom.server import background_server, load_config
    from threadloom.server.executor import _Outbox

    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=fresh_postgres_database)
    delay = _Outbox.delay
    _Outbox.delay = 3600.0  # no run here is that long: every one ends first
    assert _Outbox.delay == 3600.0
    try:
        with background_server(config, run_worker=True) as url:
            client = get_sync_client(url=str(url), api_key="key-alice", timeout=60)
            tid = client.threads.create()["thread_id"]
            parts = list(client.runs.stream(tid, "payment", input={"amount": 5},
                                            stream_mode=["values", "updates"]))
            names = [p.event for p in parts]
            assert names[0] == "metadata" and "values" in names and "updates" in names
            run_id = client.runs.list(tid)[0]["run_id"]
    finally:
        _Outbox.delay = delay  # type: ignore[misc]
    import psycopg

    with psycopg.connect(fresh_postgres_database, autocommit=True) as conn:
        rows = conn.execute("SELECT event, at FROM server_run_events WHERE run_id = %s "
                            "ORDER BY id", (run_id,)).fetchall()
    assert [e for e, _ in rows][0] == "metadata" and rows[-1][0] == ""
    assert len({at for _, at in rows}) == 1  # one transaction: the run's end


def test_only_a_streamed_runs_events_are_written_before_its_end(
    fresh_postgres_database: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run a client streams has its events written as they come (in batches of
    ``_Outbox.delay``); one a client waits for (``runs.wait``) has them written with its
    end when it ends within ``_Outbox.quiet_delay`` - one statement instead of two."""
    import threading

    import psycopg
    from langgraph_sdk import get_sync_client

    from tests.server.conftest import API_KEYS, GRAPHS, HERE
    from threadloom.server import background_server, load_config
    from threadloom.server.executor import _Outbox

    monkeypatch.setattr(_Outbox, "quiet_delay", 3600.0)  # every run here ends first
    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=fresh_postgres_database)
    with background_server(config, run_worker=True) as url:
        client = get_sync_client(url=str(url), api_key="key-alice", timeout=60)

        def open_gate(tag: str) -> None:  # the run's second node waits for it
            time.sleep(0.5)
            client.store.put_item(["gates"], tag, {"open": True})

        runs = {}
        for how in ("stream", "wait"):
            tid = client.threads.create()["thread_id"]
            gate = threading.Thread(target=open_gate, args=(how,))
            gate.start()
            body = {"input": {"log": []}, "config": {"configurable": {"tag": how}}}
            if how == "stream":
                list(client.runs.stream(tid, "slow", **body))
            else:
                out = client.runs.wait(tid, "slow", **body)
                assert out["log"] == ["first:wait", "second:wait"], out
            gate.join()
            runs[how] = client.runs.list(tid)[0]["run_id"]
    with psycopg.connect(fresh_postgres_database, autocommit=True) as conn:
        written = {how: {at for (at,) in conn.execute(
            "SELECT at FROM server_run_events WHERE run_id = %s", (run_id,))}
            for how, run_id in runs.items()}
    assert len(written["stream"]) > 1  # its first events went before its end
    assert len(written["wait"]) == 1  # all with its end: one transaction


def test_a_claim_on_postgres_carries_each_runs_assistant(fresh_postgres_database: str
                                                         ) -> None:
    """A claimed run holds its assistant's record as of the claim (read in the claim's
    statement; None once the assistant is deleted), and a worker executing it reads
    no assistant of its own."""
    from langgraph_sdk import get_sync_client

    from tests.server.conftest import API_KEYS, GRAPHS, HERE
    from threadloom.server import background_server, load_config
    from threadloom.server.storage.base import CLAIMED_ASSISTANT
    from threadloom.server.storage.postgres import PostgresStorage

    async def scenario() -> None:
        storage = PostgresStorage(fresh_postgres_database)
        await storage.setup()
        try:
            now = now_iso()
            record = {"assistant_id": new_id(), "graph_id": "g", "name": "n",
                      "description": None, "config": {"configurable": {"k": 1}},
                      "context": {}, "metadata": {"m": 2}, "version": 1, "created_at": now,
                      "updated_at": now}
            await storage.create_assistant(record, if_exists="raise")
            kept, gone = await _thread(storage), await _thread(storage)
            for tid in (kept, gone):
                run, _ = await storage.create_run(
                    {"run_id": new_id(), "thread_id": tid, "assistant_id":
                     record["assistant_id"] if tid == kept else new_id(), "created_at": now,
                     "updated_at": now, "metadata": {}, "kwargs": {}, "run_at": 0.0},
                    multitask_strategy="enqueue")
            runs = await storage.claim_runs("w", 30.0, 2)
            by_thread = {r["thread_id"]: r for r in runs}
            assert by_thread[kept][CLAIMED_ASSISTANT] == await storage.get_assistant(
                record["assistant_id"])
            assert by_thread[gone][CLAIMED_ASSISTANT] is None
        finally:
            await storage.close()

    asyncio.run(scenario())

    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=fresh_postgres_database)
    with background_server(config) as api, background_server(config, run_worker=True) as w:
        reads: list[str] = []
        worker_storage = w.server.ctx.storage
        get_assistant = worker_storage.get_assistant

        async def counted(assistant_id: str) -> Any:
            reads.append(assistant_id)
            return await get_assistant(assistant_id)

        worker_storage.get_assistant = counted
        client = get_sync_client(url=str(api), api_key="key-alice", timeout=60)
        tid = client.threads.create()["thread_id"]
        paused = client.runs.wait(tid, "payment", input={"amount": 5})
        assert paused["__interrupt__"]
        assert reads == []


def test_outbox_raises_a_failed_write_at_flush(fresh_postgres_database: str) -> None:
    from threadloom.server.executor import _Outbox
    from threadloom.server.storage.postgres import PostgresStorage

    async def scenario() -> None:
        storage = PostgresStorage(fresh_postgres_database)
        await storage.setup()
        try:
            # PostgreSQL text cannot hold a NUL character: the write fails
            outbox = _Outbox(storage, "bad\x00run", keep=False)
            await outbox.put("values", b"{}")
            with pytest.raises(Exception, match="NUL|0x00"):
                await outbox.flush()
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_a_worker_process_pool_stays_small(fresh_postgres_database: str) -> None:
    from threadloom.server.storage.postgres import WORKER_POOL_SIZE, PostgresStorage

    async def scenario() -> None:
        api = PostgresStorage(fresh_postgres_database, pool_size=30)
        worker = PostgresStorage(fresh_postgres_database, pool_size=30)
        worker.serve_workers_only()
        await api.setup()
        await worker.setup()
        try:
            assert api._pool.max_size == 30
            assert worker._pool.max_size == WORKER_POOL_SIZE < 30
        finally:
            await worker.close()
            await api.close()

    asyncio.run(scenario())


def test_small_events_reach_subscribers_in_their_notification(
    fresh_postgres_database: str,
) -> None:
    """A stream notification carries its events when they are few and small: the API
    process's subscriber of a run it queued takes them from there without reading the
    table; a large event is read from the table. Either way: all, in order, once."""
    from threadloom.server.storage.postgres import INLINE_BYTES, PostgresStorage

    async def scenario() -> None:
        api = PostgresStorage(fresh_postgres_database)
        worker = PostgresStorage(fresh_postgres_database)
        worker.serve_workers_only()
        await api.setup()
        await worker.setup()
        reads: list[str] = []
        rows = api._rows

        async def counted(sql: str, args: Any = (), **options: Any) -> list[tuple]:
            if "FROM server_run_events WHERE run_id" in sql:
                reads.append(sql)
            return await rows(sql, args, **options)

        api._rows = counted  # type: ignore[method-assign]
        try:
            for size, from_table in ((10, False), (INLINE_BYTES + 1, True)):
                reads.clear()
                tid = await _thread(api)
                run_id = await _queue(api, tid)
                events = api.subscribe(run_id, after=None)
                drained = asyncio.ensure_future(_drain(events))
                claimed = await worker.claim_runs("w", 30.0, 1)
                assert [r["run_id"] for r in claimed] == [run_id]
                big = json.dumps({"x": "y" * size}).encode()
                await worker.publish_many(run_id, [("metadata", b'{"n": 0}'),
                                                   ("values", big)], keep=False)
                await worker.publish(run_id, "values", b'{"n": 2}', keep=False)
                await worker.end_run(run_id, "success", thread={"status": "idle"},
                                     events=[("__result__", b'{"n": 3}')], keep=False)
                got = await asyncio.wait_for(drained, 20)
                assert got == [("metadata", {"n": 0}), ("values", json.loads(big)),
                               ("values", {"n": 2}), ("__result__", {"n": 3})]
                # (a wake-up racing with a read may read once more: never fewer)
                assert bool(reads) == from_table, (size, reads)
        finally:
            await worker.close()
            await api.close()

    asyncio.run(scenario())


def test_a_large_first_batch_heard_before_iterating_is_read_at_once(
    fresh_postgres_database: str,
) -> None:
    """A run queued here ends, in one notification too large to carry its events,
    before its subscriber's first step: the subscriber reads the table at once instead
    of waiting for a notification that already came (the fallback wait of 5 s)."""
    from threadloom.server.storage.postgres import INLINE_BYTES

    async def scenario() -> None:
        async with api_and_worker(fresh_postgres_database) as (api, worker):
            tid = await _thread(api)
            run_id = await _queue(api, tid)
            events = api.subscribe(run_id, after=None)  # not iterated yet
            await worker.claim_runs("w", 30.0, 1)
            big = json.dumps({"x": "y" * (INLINE_BYTES + 1)}).encode()
            await worker.end_run(run_id, "success", thread={"status": "idle"},
                                 events=[("values", big), ("__result__", b"1")], keep=False)
            while run_id not in api._seen:  # the notification is heard here
                await asyncio.sleep(0.01)
            got = await asyncio.wait_for(_drain(events), 4.0)  # not the 5 s fallback
            assert got == [("values", json.loads(big)), ("__result__", 1)]

    asyncio.run(scenario())


def test_a_run_heard_of_before_its_queueing_returned_is_read_at_once(
    fresh_postgres_database: str,
) -> None:
    """On a busy event loop a run queued here can be claimed, run and ended - its
    notification heard, with no subscriber yet to keep its events for - before the
    statement queueing it returns here: its subscriber reads the table at once instead
    of waiting for a notification that already came (the fallback wait of 5 s)."""
    async def scenario() -> None:
        async with api_and_worker(fresh_postgres_database) as (api, worker):
            tid = await _thread(api)
            now = now_iso()
            record = {"run_id": new_id(), "thread_id": tid, "assistant_id": "a",
                      "created_at": now, "updated_at": now, "metadata": {}, "kwargs": {},
                      "run_at": 0.0}
            await worker.create_run(record, multitask_strategy="enqueue")  # the INSERT
            await worker.claim_runs("w", 30.0, 1)
            await worker.end_run(record["run_id"], "success", thread={"status": "idle"},
                                 events=[("values", b"0"), ("__result__", b"1")], keep=False)
            while record["run_id"] not in api._seen:  # heard here, before the return:
                await asyncio.sleep(0.01)
            api._created(record, "enqueue")  # what create_run does once it returns
            events = api.subscribe(record["run_id"], after=None)
            got = await asyncio.wait_for(_drain(events), 4.0)  # not the 5 s fallback
            assert got == [("values", 0), ("__result__", 1)]

    asyncio.run(scenario())


def _claims(sent: list[tuple[str, str]]) -> list[str]:
    """Which claims of ``sent`` (``sent_statements``) looked at every queued run
    (``scan``) and which at the runs named by notifications (``named``)."""
    return ["named" if "r.seq = ANY(" in sql else "scan"
            for _, sql in sent if "WITH next AS" in sql]


async def _hear(worker: Any, count: int) -> None:
    """Until the worker's storage has heard ``count`` runs queued."""
    for _ in range(500):
        if len(worker._claim_hints) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"heard {len(worker._claim_hints)} of {count} queued runs")


def test_a_worker_claims_the_runs_it_heard_of_by_their_key(
    fresh_postgres_database: str, sent_statements: list[tuple[str, str]],
) -> None:
    """After its first look at every queued run, a worker claims the runs whose queueing
    it heard of by their keys (not walking the index of queued runs, which a busy
    server fills with entries of runs no longer queued), oldest first, keeping the
    named runs a full claim did not reach for the next one."""
    async def scenario() -> None:
        async with api_and_worker(fresh_postgres_database) as (api, worker):
            assert await worker.claim_runs("w", 30.0, 4) == []  # the first look: all
            threads = [await _thread(api) for _ in range(3)]
            queued = [await _queue(api, tid) for tid in threads]
            await _hear(worker, 3)
            sent_statements.clear()
            got = [r["run_id"] for r in await worker.claim_runs("w", 30.0, 2)]
            assert got == queued[:2]
            got = [r["run_id"] for r in await worker.claim_runs("w", 30.0, 2)]
            assert got == queued[2:]
            assert _claims(sent_statements) == ["named", "named"]
            # nothing named left: the next claim looks at every queued run
            assert await worker.claim_runs("w", 30.0, 2) == []
            assert _claims(sent_statements) == ["named", "named", "scan"]
            # a run a full look took: its notification, heard after, names nothing
            worker._scan_asked = True
            late = await _queue(api, await _thread(api))
            assert [r["run_id"] for r in await worker.claim_runs("w", 30.0, 2)] == [late]
            await asyncio.sleep(0.3)  # (its notification has come by now)
            assert not worker._claim_hints

    asyncio.run(scenario())


def test_runs_named_but_not_claimable_yet_are_claimed_by_a_later_full_look(
    fresh_postgres_database: str,
) -> None:
    """A run heard of while its thread is busy is claimed once that thread's run ends
    (whose notification asks for a full look); a run queued for later
    (``after_seconds``), at the first claim at least ``full_scan_seconds`` after its
    time came - while other runs keep being named."""
    async def scenario() -> None:
        async with api_and_worker(fresh_postgres_database) as (api, worker):
            worker.full_scan_seconds = 0.3
            assert await worker.claim_runs("w", 30.0, 4) == []
            busy = await _thread(api)
            first = await _queue(api, busy)
            second = await _queue(api, busy)  # behind ``first``
            await _hear(worker, 2)
            assert [r["run_id"] for r in await worker.claim_runs("w", 30.0, 4)] == [first]
            assert await worker.claim_runs("w", 30.0, 4) == []
            await worker.end_run(first, "success", thread={"status": "idle"},
                                 events=[("__result__", b"null")], keep=False)
            for _ in range(500):  # the end's notification: look at every queued run
                if worker._scan_asked:
                    break
                await asyncio.sleep(0.01)
            assert [r["run_id"] for r in await worker.claim_runs("w", 30.0, 4)] == [second]

            now = now_iso()
            later, _ = await api.create_run(
                {"run_id": new_id(), "thread_id": await _thread(api), "assistant_id": "a",
                 "created_at": now, "updated_at": now, "metadata": {}, "kwargs": {},
                 "run_at": time.time() + 0.5},
                multitask_strategy="enqueue",
            )
            await _hear(worker, 1)
            assert await worker.claim_runs("w", 30.0, 4) == []  # named, not yet due
            claimed: list[str] = []
            for _ in range(100):  # other runs keep coming, each heard of and claimed
                await _queue(api, await _thread(api))
                await _hear(worker, 1)
                claimed += [r["run_id"] for r in await worker.claim_runs("w", 30.0, 4)]
                if later["run_id"] in claimed:
                    break
                await asyncio.sleep(0.05)
            assert later["run_id"] in claimed

    asyncio.run(scenario())


def test_a_claim_of_named_runs_finds_them_by_key_in_its_generic_plan(
    fresh_postgres_database: str, sent_statements: list[tuple[str, str]],
) -> None:
    """The named claim's plan (generic, as a prepared statement's is after five runs)
    looks its runs up by seq - not walking an index of active runs for the seq in its
    second column - and the "no other active run of this thread" check by thread."""
    import psycopg

    async def scenario() -> None:
        async with api_and_worker(fresh_postgres_database) as (api, worker):
            await worker.claim_runs("w", 30.0, 4)
            await _queue(api, await _thread(api))
            await _hear(worker, 1)
            sent_statements.clear()
            await worker.claim_runs("w", 30.0, 4)

    asyncio.run(scenario())
    [named] = [sql for _, sql in sent_statements if "r.seq = ANY(" in sql]
    parts = named.split("%s")
    numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
    with psycopg.connect(fresh_postgres_database) as conn:
        # a server's table: thousands of runs that ended, some active (planned with
        # the statistics of such a table, not of an empty one)
        conn.execute(
            "INSERT INTO server_runs (run_id, thread_id, assistant_id, created_at, "
            "updated_at, status, metadata, kwargs) SELECT 'r' || i, 't' || (i / 2), 'a', "
            "'', '', CASE WHEN i % 100 = 0 THEN 'pending' ELSE 'success' END, '{}', '{}' "
            "FROM generate_series(1, 5000) AS i")
        conn.execute("ANALYZE server_runs")
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE named_claim (bigint[], int, text, float8, text) AS {numbered}")
        plan = "\n".join(row[0] for row in conn.execute(
            "EXPLAIN (COSTS OFF) EXECUTE named_claim ('{1,2}', 4, 'w', 30, 'now')"))
        conn.rollback()
    assert "Index Cond: (seq = ANY ($1))" in plan, plan
    assert "Index Cond: (thread_id = r.thread_id)" in plan, plan


def test_a_full_look_keeps_the_names_of_the_runs_it_did_not_reach(
    fresh_postgres_database: str,
) -> None:
    """A look at every queued run that fills the worker's free slots with the oldest
    runs leaves the other runs it heard of named: the next claims take them, oldest
    first, before a run queued after them (forgotten, they waited for the looks at every
    queued run - one a second - while newer runs were claimed by name: under load some
    runs waited 13 s where most waited 0.6 s)."""
    async def scenario() -> None:
        async with api_and_worker(fresh_postgres_database) as (api, worker):
            assert await worker.claim_runs("w", 30.0, 4) == []  # the first look: all
            queued = [await _queue(api, await _thread(api)) for _ in range(4)]
            await _hear(worker, 4)
            worker._scan_asked = True  # (e.g. a thread freed): look at every queued run
            assert [r["run_id"] for r in await worker.claim_runs("w", 30.0, 1)] == queued[:1]
            queued.append(await _queue(api, await _thread(api)))
            await asyncio.sleep(0.3)  # (its notification has come by now)
            got = []
            for _ in range(4):
                got += [r["run_id"] for r in await worker.claim_runs("w", 30.0, 1)]
            assert got == queued[1:]

    asyncio.run(scenario())
