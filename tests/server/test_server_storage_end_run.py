"""``Storage.end_run``: a run's final status, its thread's new state, its last events
and the end of its stream, on SQLite and on PostgreSQL (where it is one transaction) -
written only by the worker holding the run, whose leases ``renew_leases`` renews and
which ``release_run`` puts back in the queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from threadloom.server.records import new_id, now_iso


@pytest.fixture(params=["sqlite", "postgres"])
def storage_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A function making the storage under test (set up; closed by the caller)."""

    async def make() -> Any:
        if request.param == "sqlite":
            from threadloom.server.storage.sqlite import SqliteStorage

            storage = SqliteStorage(str(tmp_path / "server.db"))
        else:
            from threadloom.server.storage.postgres import PostgresStorage

            storage = PostgresStorage(request.getfixturevalue("fresh_postgres_database"))
        await storage.setup()
        return storage

    return make


async def _thread(storage: Any) -> str:
    now = now_iso()
    record = {"thread_id": new_id(), "created_at": now, "updated_at": now,
              "state_updated_at": now, "metadata": {}, "status": "idle", "config": {},
              "values": None}
    await storage.create_thread(record, if_exists="raise")
    return record["thread_id"]


async def _queue(storage: Any, thread_id: str) -> str:
    now = now_iso()
    run, _ = await storage.create_run(
        {"run_id": new_id(), "thread_id": thread_id, "assistant_id": "a", "created_at": now,
         "updated_at": now, "metadata": {}, "kwargs": {}, "run_at": 0.0},
        multitask_strategy="enqueue",
    )
    return run["run_id"]


@asynccontextmanager
async def api_and_worker(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """Two PostgreSQL storages on ``url``, set up: an API process's and a worker
    process's (``serve_workers_only``); closed on exit."""
    from threadloom.server.storage.postgres import PostgresStorage

    api = PostgresStorage(url)
    worker = PostgresStorage(url)
    worker.serve_workers_only()
    await api.setup()
    await worker.setup()
    try:
        yield api, worker
    finally:
        await worker.close()
        await api.close()


async def _drain(events: AsyncIterator[Any]) -> list[tuple[str, Any]]:
    return [(e.event, json.loads(e.data)) async for e in events]


def test_end_run_records_the_end_then_closes_the_stream(storage_factory) -> None:
    async def scenario() -> None:
        storage = await storage_factory()
        try:
            tid = await _thread(storage)
            run_id = await _queue(storage, tid)
            events = storage.subscribe(run_id, after=None)
            claimed = await storage.claim_run("w", 30.0)
            assert claimed is not None and claimed["run_id"] == run_id
            await storage.publish(run_id, "values", b'{"x": 0}', keep=False)
            finished = await storage.end_run(
                run_id, "success", thread={"values": {"x": 1}, "status": "idle",
                                           "state_updated": True},
                events=[("__result__", b'{"x": 1}'), ("extra", b"[1, 2]")], keep=False,
            )
            assert finished is not None and finished["status"] == "success"
            # the events in order, then the subscription ends (the stream is closed)
            got = await asyncio.wait_for(_drain(events), 10)
            assert got == [("values", {"x": 0}), ("__result__", {"x": 1}), ("extra", [1, 2])]
            assert (await storage.get_run(run_id))["status"] == "success"
            thread = await storage.get_thread(tid)
            assert thread["values"] == {"x": 1} and thread["status"] == "idle"
            assert await storage.wait_run(run_id, 1.0) is not None
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_end_run_leaves_the_thread_busy_for_the_run_queued_behind(storage_factory) -> None:
    async def scenario() -> None:
        storage = await storage_factory()
        try:
            tid = await _thread(storage)
            first = await _queue(storage, tid)
            second = await _queue(storage, tid)
            assert (await storage.claim_run("w", 30.0))["run_id"] == first
            assert await storage.claim_run("w", 30.0) is None  # the thread is taken
            await storage.end_run(first, "success", thread={"status": "idle"},
                                  events=[("__result__", b"null")], keep=True)
            assert (await storage.get_thread(tid))["status"] == "busy"
            assert (await storage.claim_run("w", 30.0))["run_id"] == second
            # kept events replay after the run ended, then the closed stream ends
            replay = await asyncio.wait_for(_drain(storage.subscribe(first, after="0")), 10)
            assert replay == [("__result__", None)]
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_a_workers_only_storage_still_hears_of_queued_and_cancelled_runs(
    fresh_postgres_database: str,
) -> None:
    """``serve_workers_only`` (what ``threadloom worker`` asks) drops the stream and
    run wake-ups, never those a worker needs: a run queued elsewhere wakes
    ``wait_for_work`` at once, and a cancel reaches ``watch_cancellations``."""
    from threadloom.server.storage.postgres import PostgresStorage

    async def scenario() -> None:
        api = PostgresStorage(fresh_postgres_database)
        worker = PostgresStorage(fresh_postgres_database)
        worker.serve_workers_only()
        await api.setup()
        await worker.setup()
        cancels: list[tuple[str, str]] = []
        await worker.watch_cancellations(lambda run_id, action: cancels.append(
            (run_id, action)))
        try:
            await worker.wait_for_work(0.1)  # forget the wake-ups of setting up
            tid = await _thread(api)
            loop = asyncio.get_running_loop()
            start = loop.time()
            queued = asyncio.ensure_future(_queue(api, tid))
            await worker.wait_for_work(30.0)
            assert loop.time() - start < 15.0  # woken, not timed out
            run_id = await queued
            assert (await worker.claim_run("w", 30.0))["run_id"] == run_id
            await api.request_cancel([run_id], "interrupt")
            for _ in range(100):
                if cancels:
                    break
                await asyncio.sleep(0.1)
            assert cancels == [(run_id, "interrupt")]
        finally:
            await worker.close()
            await api.close()

    asyncio.run(scenario())


async def _wait_for_a_lock_wait(conn: Any) -> None:
    """Until a backend of this database waits for a lock."""
    for _ in range(200):
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        if (await cur.fetchone())[0]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("nobody waited for a lock")


def test_end_run_sees_a_run_queued_while_it_waited_for_the_thread(
    fresh_postgres_database: str,
) -> None:
    """Another process queues a run on the thread (holding the thread's lock, as
    ``create_run`` with ``interrupt`` does) while the ending run waits for that lock:
    ``end_run``'s single statement read the thread's runs before the lock was free, so
    it does it again - the thread stays ``busy`` and the queued run can start."""
    import psycopg

    from threadloom.server.storage.postgres import PostgresStorage

    async def scenario() -> None:
        storage = PostgresStorage(fresh_postgres_database)
        await storage.setup()
        other = await psycopg.AsyncConnection.connect(fresh_postgres_database)
        watcher = await psycopg.AsyncConnection.connect(fresh_postgres_database,
                                                        autocommit=True)
        try:
            tid = await _thread(storage)
            first = await _queue(storage, tid)
            assert (await storage.claim_run("w", 30.0))["run_id"] == first
            await other.execute("SELECT 1 FROM server_threads WHERE thread_id = %s "
                                "FOR UPDATE", (tid,))
            ending = asyncio.ensure_future(storage.end_run(
                first, "success", thread={"status": "idle"}, events=[], keep=False))
            await _wait_for_a_lock_wait(watcher)
            second = new_id()
            await other.execute(
                "INSERT INTO server_runs (run_id, thread_id, assistant_id, created_at, "
                "updated_at, status, metadata, kwargs, multitask_strategy) VALUES "
                "(%s, %s, 'a', %s, %s, 'pending', '{}', '{}', 'interrupt')",
                (second, tid, now_iso(), now_iso()),
            )
            await other.execute("UPDATE server_threads SET status = 'busy' "
                                "WHERE thread_id = %s", (tid,))
            await other.commit()
            finished = await asyncio.wait_for(ending, 10)
            assert finished is not None and finished["status"] == "success"
            assert (await storage.get_thread(tid))["status"] == "busy"
            assert (await storage.claim_run("w", 30.0))["run_id"] == second
        finally:
            await other.close()
            await watcher.close()
            await storage.close()

    asyncio.run(scenario())


def test_end_run_refuses_metadata_and_changes_nothing(storage_factory) -> None:
    """Both storages write a run's end without reading the thread, so neither can merge
    metadata: asked to, it says so, and the run and its thread stay as they were."""

    async def scenario() -> None:
        storage = await storage_factory()
        try:
            tid = await _thread(storage)
            run_id = await _queue(storage, tid)
            await storage.claim_run("w", 30.0)
            with pytest.raises(ValueError, match="metadata"):
                await storage.end_run(run_id, "success", thread={"metadata": {"a": 1}},
                                      events=[], keep=False)
            assert (await storage.get_run(run_id))["status"] == "running"
            thread = await storage.get_thread(tid)
            assert thread["metadata"] == {} and thread["status"] == "busy"
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_sqlite_ends_a_run_in_two_statements_without_reading_its_thread(
    tmp_path: Path,
) -> None:
    """On SQLite a run's end is two statements in one transaction - the run's row
    (returned as updated), then the thread's fields - and the thread is not read first
    (its state values could be megabytes of JSON). A thread given no fields is left as
    it was unless another of its runs is active (then it is ``busy``)."""
    from threadloom.server.storage.sqlite import SqliteStorage

    async def scenario() -> None:
        storage = SqliteStorage(str(tmp_path / "two.db"))
        await storage.setup()
        statements: list[str] = []
        try:
            tid = await _thread(storage)
            run_id = await _queue(storage, tid)
            await storage.claim_run("w", 30.0)
            storage._conn.set_trace_callback(statements.append)
            run = await storage.finish_run(run_id, "success", thread={
                "status": "idle", "values": {"a": [1, 2]}, "interrupts": {},
                "error": None, "state_updated": True})
            storage._conn.set_trace_callback(None)
            assert run is not None and run["status"] == "success"
            thread = await storage.get_thread(tid)
            assert thread["status"] == "idle" and thread["values"] == {"a": [1, 2]}
            assert thread["state_updated_at"] == thread["updated_at"] == run["updated_at"]
            body = [s for s in statements if s not in ("BEGIN IMMEDIATE", "COMMIT")]
            assert len(body) == 2, body
            assert not any(s.startswith("SELECT") for s in body), body

            # no fields: the thread stays as it was; another run active: busy
            second = await _queue(storage, tid)
            await storage.claim_run("w", 30.0)
            before = await storage.get_thread(tid)
            await storage.finish_run(second, "success", thread=None)
            assert await storage.get_thread(tid) == before
            third, fourth = await _queue(storage, tid), await _queue(storage, tid)
            await storage.claim_run("w", 30.0)
            await storage.finish_run(third, "success", thread={"status": "idle"})
            assert (await storage.get_thread(tid))["status"] == "busy"  # fourth waits
            assert fourth
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_end_run_on_postgres_notifies_the_end_and_the_thread_change_at_once(
    fresh_postgres_database: str,
) -> None:
    """A run's end that changes its thread's record sends one notification for both
    (PostgreSQL wakes every listening connection for each): ``threadloom_run`` with the
    run's and the thread's ids, none on ``threadloom_threads``. Whoever waits for the run
    wakes, and so do the approval feed's watchers (``watch_threads``)."""
    import psycopg

    from threadloom.server.storage.postgres import RUN, THREADS

    async def scenario() -> None:
        async with api_and_worker(fresh_postgres_database) as (api, worker):
            changed = asyncio.Event()
            api.watch_threads(changed.set)
            tid = await _thread(api)
            run_id = await _queue(api, tid)
            assert (await worker.claim_run("w", 30.0))["run_id"] == run_id
            waiting = asyncio.ensure_future(api.wait_run(run_id, 30.0))
            listener = await psycopg.AsyncConnection.connect(fresh_postgres_database,
                                                             autocommit=True)
            try:
                await listener.execute(f"LISTEN {RUN}")
                await listener.execute(f"LISTEN {THREADS}")
                await asyncio.sleep(0.2)
                changed.clear()
                await worker.end_run(run_id, "success", thread={
                    "values": {"x": 1}, "status": "idle", "state_updated": True,
                }, events=[], keep=False)
                heard = []
                async for note in listener.notifies(timeout=1.0):
                    heard.append((note.channel, note.payload))
            finally:
                await listener.close()
            assert heard == [(RUN, f"{run_id} {tid}")]
            run = await asyncio.wait_for(waiting, 5.0)
            assert run is not None and run["status"] == "success"
            await asyncio.wait_for(changed.wait(), 5.0)

    asyncio.run(scenario())


def _with_storage(storage_factory: Any, scenario: Any) -> None:
    """Run ``scenario(storage)`` on a new storage, closed after."""
    async def main() -> None:
        storage = await storage_factory()
        try:
            await scenario(storage)
        finally:
            await storage.close()

    asyncio.run(main())


def test_renew_leases_renews_and_names_the_runs_the_worker_still_holds(
        storage_factory) -> None:
    async def scenario(storage: Any) -> None:
        kept, ended, expired = [await _queue(storage, await _thread(storage))
                                for _ in range(3)]
        assert (await storage.claim_run("w", 30.0))["run_id"] == kept
        assert (await storage.claim_run("w", 30.0))["run_id"] == ended
        assert (await storage.claim_run("w", 0.05))["run_id"] == expired
        await storage.end_run(ended, "success", thread=None, events=[], keep=False)
        await asyncio.sleep(0.1)
        assert await storage.requeue_expired() == [expired]
        assert await storage.renew_leases([kept, ended, expired, "nope"], "w", 0.2) \
            == {kept}
        assert await storage.renew_leases([kept], "another worker", 30.0) == set()
        assert await storage.renew_leases([], "w", 30.0) == set()
        # renewed for 0.2 s (not the claim's 30): it runs out, and is requeued
        await asyncio.sleep(0.3)
        assert kept in await storage.requeue_expired()

    _with_storage(storage_factory, scenario)


def test_release_run_puts_the_run_back_in_the_queue_for_later(storage_factory) -> None:
    async def scenario(storage: Any) -> None:
        tid = await _thread(storage)
        run_id = await _queue(storage, tid)
        assert (await storage.claim_run("w", 30.0))["attempt"] == 1
        assert await storage.release_run(run_id, "another worker", 0.0) is False
        assert (await storage.get_run(run_id))["status"] == "running"
        assert await storage.release_run(run_id, "w", 0.6) is True
        assert (await storage.get_run(run_id))["status"] == "pending"
        assert await storage.release_run(run_id, "w", 0.0) is False  # not held now
        assert await storage.claim_run("w2", 30.0) is None  # not before its time
        await asyncio.sleep(0.7)
        again = await storage.claim_run("w2", 30.0)
        assert again is not None and again["run_id"] == run_id and again["attempt"] == 2

    _with_storage(storage_factory, scenario)


def test_end_run_by_a_worker_not_holding_the_run_writes_nothing(storage_factory) -> None:
    """The run's lease ran out and another worker holds it: the first worker's end of
    it - status, thread, events - is not written; the holder's is."""
    async def scenario(storage: Any) -> None:
        tid = await _thread(storage)
        run_id = await _queue(storage, tid)
        events = storage.subscribe(run_id, after=None)
        await storage.claim_run("first", 0.05)
        await asyncio.sleep(0.1)
        await storage.requeue_expired()
        assert (await storage.claim_run("second", 30.0))["run_id"] == run_id
        stale = await storage.end_run(
            run_id, "error", thread={"values": {"x": "stale"}, "status": "error",
                                     "state_updated": True},
            events=[("__result__", b'"stale"')], keep=False, worker_id="first")
        assert stale is None
        assert await storage.finish_run(run_id, "error", thread=None,
                                        worker_id="first") is None
        assert (await storage.get_run(run_id))["status"] == "running"
        assert (await storage.get_thread(tid))["values"] is None
        assert await storage.renew_leases([run_id], "second", 30.0) == {run_id}
        done = await storage.end_run(
            run_id, "success", thread={"values": {"x": 1}, "status": "idle",
                                       "state_updated": True},
            events=[("__result__", b'{"x": 1}')], keep=False, worker_id="second")
        assert done is not None and done["status"] == "success"
        assert await asyncio.wait_for(_drain(events), 10) == [("__result__", {"x": 1})]
        assert (await storage.get_thread(tid))["values"] == {"x": 1}

    _with_storage(storage_factory, scenario)


def test_end_run_of_a_run_deleted_meanwhile_still_ends_its_stream(storage_factory) -> None:
    async def scenario(storage: Any) -> None:
        run_id = await _queue(storage, await _thread(storage))
        events = storage.subscribe(run_id, after=None)
        await storage.claim_run("w", 30.0)
        assert await storage.delete_run(run_id)
        assert await storage.end_run(run_id, "success", thread=None,
                                     events=[("__result__", b"1")], keep=False,
                                     worker_id="w") is None
        assert await asyncio.wait_for(_drain(events), 10) == [("__result__", 1)]

    _with_storage(storage_factory, scenario)


def test_a_claim_takes_only_runs_of_the_graphs_the_worker_serves(storage_factory) -> None:
    """A worker serving graph ``a`` leaves ``b``'s runs queued - for a worker that serves
    ``b`` - and takes a run whose assistant is gone (it ends at once, anywhere)."""
    async def scenario(storage: Any) -> None:
        now = now_iso()
        assistants = {}
        for graph_id in ("a", "b"):
            record = {"assistant_id": new_id(), "graph_id": graph_id, "name": graph_id,
                      "description": None, "config": {}, "context": {}, "metadata": {},
                      "version": 1, "created_at": now, "updated_at": now}
            await storage.create_assistant(record, if_exists="raise")
            assistants[graph_id] = record["assistant_id"]

        async def queue(assistant_id: str) -> str:
            run, _ = await storage.create_run(
                {"run_id": new_id(), "thread_id": await _thread(storage),
                 "assistant_id": assistant_id, "created_at": now, "updated_at": now,
                 "metadata": {}, "kwargs": {}, "run_at": 0.0},
                multitask_strategy="enqueue")
            return str(run["run_id"])

        of_b = await queue(assistants["b"])
        of_a = await queue(assistants["a"])
        orphan = await queue(new_id())  # its assistant is gone
        taken = await storage.claim_runs("serves a", 30.0, 10, ["a"])
        assert [run["run_id"] for run in taken] == [of_a, orphan]
        assert await storage.claim_runs("serves nothing", 30.0, 10, []) == []
        assert (await storage.get_run(of_b))["status"] == "pending"
        assert [r["run_id"] for r in await storage.claim_runs("serves b", 30.0, 10, ["b"])] \
            == [of_b]

    _with_storage(storage_factory, scenario)


def test_only_the_servers_own_database_going_away_counts_as_unavailable(
    fresh_postgres_database: str, tmp_path: Path,
) -> None:
    """``unavailable``: an ``OperationalError`` of a connection the database dropped,
    raised through the storage (here its store), is the server's database going away -
    a run is retried, a request answered 503; the same error from a node's own
    connection to a database, or any other error, is not."""
    import psycopg

    from tests.server.graphs import terminate_other_backends as terminate_all
    from threadloom.server.storage.postgres import PostgresStorage
    from threadloom.server.storage.sqlite import SqliteStorage

    async def go() -> None:
        storage = PostgresStorage(fresh_postgres_database)
        await storage.setup()
        try:
            await storage.store.aput(("ns",), "k", {"v": 1})
            terminate_all(fresh_postgres_database)  # (blocking: the storage notices nothing)
            with pytest.raises(psycopg.OperationalError) as dropped:
                await storage.store.aget(("ns",), "k")
            assert storage.unavailable(dropped.value)
            # the pool's other connections were checked: the next read goes through
            for _ in range(100):
                try:
                    assert (await storage.store.aget(("ns",), "k")).value == {"v": 1}
                    break
                except psycopg.OperationalError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the storage never recovered")
            # a node's own connection, dropped the same way: not the server's database
            async with await psycopg.AsyncConnection.connect(fresh_postgres_database) as own:
                terminate_all(fresh_postgres_database)
                with pytest.raises(psycopg.OperationalError) as theirs:
                    await own.execute("SELECT 1")
            assert not storage.unavailable(theirs.value)
            assert not storage.unavailable(RuntimeError("a bug"))
        finally:
            await storage.close()
        sqlite = SqliteStorage(str(tmp_path / "s.db"))
        assert not sqlite.unavailable(dropped.value)

    asyncio.run(go())


def test_a_runs_webhook_is_kept_with_its_end(storage_factory) -> None:
    """A run's webhook delivery is kept in the end's own transaction: made of the ended
    run, kept when the end is written, not kept when the worker no longer holds the run,
    and an end whose delivery cannot be kept is not written either (the next attempt
    writes both) - so no run ends without its webhook, whenever its process dies."""
    made: list[dict[str, Any]] = []

    def webhook(run: dict[str, Any]) -> tuple[str, bytes, str]:
        made.append(run)
        return "http://receiver.invalid/hook", json.dumps(run["status"]).encode(), "run"

    def failing(run: dict[str, Any]) -> tuple[str, bytes, str]:
        raise RuntimeError("no body")

    async def scenario(storage: Any) -> None:
        run_id = await _queue(storage, await _thread(storage))
        await storage.claim_run("w", 30.0)
        assert await storage.end_run(run_id, "success", thread=None, events=[], keep=False,
                                     worker_id="other", webhook=webhook) is None
        assert made == [] and await storage.take_webhooks(10, 30.0) == []
        with pytest.raises(RuntimeError, match="no body"):
            await storage.end_run(run_id, "success", thread={"status": "idle"},
                                  events=[], keep=False, worker_id="w", webhook=failing)
        assert (await storage.get_run(run_id))["status"] == "running"  # (rolled back)
        ended = await storage.end_run(run_id, "success", thread={"status": "idle"},
                                      events=[], keep=False, worker_id="w", webhook=webhook)
        assert ended is not None and [r["status"] for r in made] == ["success"]
        assert made[0]["updated_at"] == ended["updated_at"]
        kept = await storage.take_webhooks(10, 30.0)
        assert [(k["url"], k["body"], k["attempts"]) for k in kept] == [
            ("http://receiver.invalid/hook", b'"success"', 0)]
        # finish_run (a temporary run's end) keeps it the same way
        other = await _queue(storage, await _thread(storage))
        await storage.claim_run("w", 30.0)
        await storage.finish_run(other, "error", thread=None, worker_id="w", webhook=webhook)
        assert [k["body"] for k in await storage.take_webhooks(10, 30.0)] == [b'"error"']

    _with_storage(storage_factory, scenario)


def test_a_large_event_goes_out_at_about_its_own_size(storage_factory) -> None:
    """A run's events carry its state (``values`` mode): a 20 MB value is published
    and ends a run without the storage holding several copies of it - on PostgreSQL it
    went as a text array, escaped to twice its size in Python (peak ~3x, and ~1 s a
    50 MB value) - and reads back byte for byte."""
    import tracemalloc

    data = bytes(range(256)) * 80_000  # 20 MB, every byte value
    size = len(data)

    async def scenario(storage: Any) -> None:
        run_id = await _queue(storage, await _thread(storage))
        events = storage.subscribe(run_id, after=None)
        await storage.claim_run("w", 30.0)
        tracemalloc.start()
        try:
            await storage.publish_many(run_id, [("values", data)], keep=True)
            published = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            await storage.end_run(run_id, "success", thread={"status": "idle"},
                                  events=[("values", data)], keep=True, worker_id="w")
            ended = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert published < 2.5 * size and ended < 2.5 * size, (published, ended)
        got = [e async for e in events]
        assert [(e.event, e.data == data) for e in got] == [("values", True)] * 2

    _with_storage(storage_factory, scenario)


def test_a_late_subscriber_reads_a_large_stream_a_few_events_at_a_time(
        storage_factory) -> None:
    """Replaying a run whose events carry a large state (``values`` mode: a copy of it
    per step) holds a few of them at a time, not the whole stream: PostgreSQL read up to
    500 events at once, whatever their size."""
    import tracemalloc

    step = bytes(range(256)) * 4_000  # 1 MB
    count = 24

    async def scenario(storage: Any) -> None:
        run_id = await _queue(storage, await _thread(storage))
        await storage.claim_run("w", 30.0)
        for n in range(count):
            await storage.publish(run_id, "values", step + n.to_bytes(2, "big"), keep=True)
        await storage.end_run(run_id, "success", thread={"status": "idle"}, events=[],
                              keep=True, worker_id="w")
        tracemalloc.start()
        try:
            seen = []
            async for event in storage.subscribe(run_id, after="0"):
                seen.append(int.from_bytes(event.data[-2:], "big"))
                assert event.data[:-2] == step
                del event
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert seen == list(range(count))
        assert peak < 0.6 * count * len(step), peak

    _with_storage(storage_factory, scenario)


def test_a_thread_read_without_its_values(storage_factory) -> None:
    """Reads that need a thread's record, not its state (an auth check before reading
    the state from the graph, queueing a run) leave its values unread: a large state
    costs its size to read and parse."""
    async def scenario(storage: Any) -> None:
        tid = await _thread(storage)
        big = {"document": "x" * 1_000_000}
        await storage.update_thread(tid, values=big, status="idle", state_updated=True)
        full = await storage.get_thread(tid)
        bare = await storage.get_thread(tid, values=False)
        assert full["values"] == big and bare["values"] is None
        assert {k: v for k, v in full.items() if k != "values"} == \
            {k: v for k, v in bare.items() if k != "values"}
        thread, assistant = await storage.get_thread_and_assistant(tid, "none",
                                                                   values=False)
        assert thread == bare and assistant is None
        thread, _ = await storage.get_thread_and_assistant(tid, "none")
        assert thread == full
        assert await storage.get_thread(new_id(), values=False) is None

    _with_storage(storage_factory, scenario)
