"""On PostgreSQL a queued run wakes one worker: workers register (``server_workers``,
each with its process's own channel), and the statement queueing a run notifies the
least loaded live one - or ``threadloom_work``, heard by every worker, when none is
registered. A run meant for a worker that does not take it (full, or gone without
unregistering) is taken by another within about a second."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from tests.server.test_server_storage_end_run import _thread
from threadloom.server.records import new_id, now_iso

pytest.importorskip("psycopg")


@asynccontextmanager
async def _storages(url: str, count: int, *, registration_seconds: float = 3600.0
                    ) -> AsyncIterator[list[Any]]:
    """An API process's storage and ``count`` worker processes' (``serve_workers_only``),
    set up; each worker storage records the notifications it hears (``heard``)."""
    from threadloom.server.storage.postgres import PostgresStorage

    made: list[Any] = []
    try:
        for i in range(count + 1):
            storage = PostgresStorage(url, pool_size=4)
            storage.registration_seconds = registration_seconds
            if i:
                storage.serve_workers_only()
            made.append(storage)
            await storage.setup()
            storage.heard = _record(storage)
        yield made
    finally:
        for storage in reversed(made):
            await storage.close()


def _record(storage: Any) -> list[tuple[str, str]]:
    """The (channel, payload) of each notification ``storage`` hears from now on."""
    heard: list[tuple[str, str]] = []
    dispatch = storage._dispatch

    async def recording(channel: str, payload: str) -> None:
        heard.append((channel, payload))
        await dispatch(channel, payload)

    storage._dispatch = recording
    return heard


async def _queue(api: Any, strategy: str = "enqueue", assistant_id: str = "a"
                 ) -> tuple[str, int]:
    """A run queued on a new thread: its id and seq."""
    now = now_iso()
    run, _ = await api.create_run(
        {"run_id": new_id(), "thread_id": await _thread(api), "assistant_id": assistant_id,
         "created_at": now, "updated_at": now, "metadata": {}, "kwargs": {}, "run_at": 0.0},
        multitask_strategy=strategy,
    )
    row = await api._one("SELECT seq FROM server_runs WHERE run_id = %s", (run["run_id"],))
    return run["run_id"], int(row[0])


def _hearers(storages: list[Any], seq: int) -> set[int]:
    """The indexes of the storages that heard of the run ``seq`` being queued."""
    return {i for i, s in enumerate(storages) if any(p == str(seq) for _, p in s.heard)}


async def _who_heard(storages: list[Any], seq: int) -> set[int]:
    """``_hearers`` once one has heard (and a moment more, for any other to)."""
    for _ in range(500):
        if _hearers(storages, seq):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    return _hearers(storages, seq)


def test_a_queued_run_wakes_exactly_one_registered_worker(fresh_postgres_database: str
                                                         ) -> None:
    """With three worker processes registered, each queued run - by the one-statement
    path (``enqueue``) or the pipelined one (``reject``, ``interrupt``) - is notified
    to one of them, on its own channel; none hears of it on the broadcast channel."""
    from threadloom.server.storage.postgres import WORK

    async def scenario() -> None:
        async with _storages(fresh_postgres_database, 3) as (api, *workers):
            for i, worker in enumerate(workers):
                await worker.register_worker(f"w{i}", 8)
            seqs = [(await _queue(api, strategy))[1]
                    for strategy in ["enqueue"] * 9 + ["reject", "interrupt", "rollback"]]
            for seq in seqs:
                assert len(await _who_heard(workers, seq)) == 1, seq
            for worker in workers:
                assert all(channel == worker.channel for channel, payload in worker.heard
                           if payload.isdigit()), worker.heard
                assert (WORK, "") not in worker.heard  # no worker was asked to look at all
            # exactly one hint each: one claim by key, in one worker, for each run
            assert sum(len(w._claim_hints) for w in workers) == len(seqs)

    asyncio.run(scenario())


def test_workers_claim_each_queued_run_once_not_once_each(fresh_postgres_database: str
                                                         ) -> None:
    """Three ``Worker``s (each in a process of its own, as far as the database can
    tell): each run queued is claimed by key once - by the worker it was notified to -
    not by every worker (two of three claims taking nothing, as when every worker heard
    of every run)."""
    async def scenario() -> None:
        async with _storages(fresh_postgres_database, 3) as (api, *storages):
            claims: list[tuple[str, bool, int]] = []  # (worker, by key?, runs taken)
            workers, taken = [], []
            for i, storage in enumerate(storages):
                claim = storage._claim

                async def counted(worker_id: str, lease: float, limit: int,
                                  among: list[int] | None, graph_ids: Any,
                                  claim: Any = claim) -> list:
                    rows = await claim(worker_id, lease, limit, among, graph_ids)
                    claims.append((worker_id, among is not None, len(rows)))
                    return rows

                storage._claim = counted
                worker, runs = _worker(storage, f"w{i}", 100)
                workers.append(worker)
                taken.append(runs)
            for worker in workers:
                await worker.start()
            try:
                await asyncio.sleep(0.3)  # their first looks at every queued run
                for _ in range(20):
                    run_id, _ = await _queue(api)
                    for _ in range(300):
                        if any(run_id in runs for runs in taken):
                            break
                        await asyncio.sleep(0.01)
                    else:
                        raise AssertionError(f"run {run_id} not claimed")
                await asyncio.sleep(0.2)
                # (counted before the workers stop: a stopping worker puts its runs back
                # in the queue, for the others to take)
                total = sum(len(runs) for runs in taken)
                seen = list(claims)
            finally:
                for worker in workers:
                    await worker.stop()
            named = [n for _, by_key, n in seen if by_key]
            assert total == 20
            # (a run rarely goes to an idle worker's periodic full look first)
            assert len([n for n in named if n == 0]) <= 2, seen
            assert len(named) <= 20, seen

    asyncio.run(scenario())


def test_a_queued_run_wakes_a_worker_serving_its_graph(fresh_postgres_database: str
                                                       ) -> None:
    """Workers registered with the graphs they serve: a run of graph ``g2`` is notified
    to the worker serving ``g2`` (by either queueing path), never to one that would not
    take it; a run whose assistant is gone, to either."""
    async def scenario() -> None:
        async with _storages(fresh_postgres_database, 2) as (api, *workers):
            now = now_iso()
            of_graph = {}
            for graph_id in ("g1", "g2"):
                of_graph[graph_id] = new_id()
                await api.create_assistant(
                    {"assistant_id": of_graph[graph_id], "graph_id": graph_id, "name": "n",
                     "description": None, "config": {}, "context": {}, "metadata": {},
                     "version": 1, "created_at": now, "updated_at": now},
                    if_exists="raise")
            await workers[0].register_worker("serves g1", 8, ["g1"])
            await workers[1].register_worker("serves g2", 8, ["g2", "g3"])
            for strategy in ("enqueue", "reject", "enqueue", "interrupt", "enqueue"):
                for index, graph_id in enumerate(("g1", "g2")):
                    _, seq = await _queue(api, strategy, of_graph[graph_id])
                    assert await _who_heard(workers, seq) == {index}, (strategy, graph_id)
            _, seq = await _queue(api, "enqueue", new_id())  # its assistant is gone
            assert len(await _who_heard(workers, seq)) == 1

    asyncio.run(scenario())


def test_the_least_loaded_live_worker_is_woken(fresh_postgres_database: str) -> None:
    """The worker with the fewest running runs is woken - a full one (as many running
    as its slots) last, a stale registration never; with no worker registered, every
    worker hears of the run on the broadcast channel."""
    async def scenario() -> None:
        async with _storages(fresh_postgres_database, 3) as (api, *workers):
            a, b, c = workers
            await a.register_worker("a", 2)
            await b.register_worker("b", 8)
            await c.register_worker("c", 8)

            async def load(worker_id: str, count: int) -> None:
                for _ in range(count):
                    await _queue(api)
                assert len(await api.claim_runs(worker_id, 30.0, count)) == count

            async def woken() -> set[str]:
                """Who hears of a new run (then claimed by an unregistered worker)."""
                _, seq = await _queue(api)
                heard = await _who_heard(workers, seq)
                assert len(await api.claim_runs("unregistered", 30.0, 1)) == 1
                return {"abc"[i] for i in heard}

            await load("a", 1)
            await load("b", 2)
            assert await woken() == {"c"}  # a 1, b 2, c 0
            await load("c", 3)
            assert await woken() == {"a"}  # a 1, b 2, c 3
            await load("a", 1)
            assert await woken() == {"b"}  # a full (2 of 2), b 2, c 3
            # b stale (not renewed for long): not woken any more
            await api._rows("UPDATE server_workers SET seen_at = now() - interval '1 min', "
                            "live_until = now() - interval '1 s' WHERE worker_id = 'b'")
            assert await woken() == {"c"}  # a full, c 3
            await c.unregister_worker("c")
            assert await woken() == {"a"}  # full, but the only live one left
            await a.unregister_worker("a")
            await api._rows("DELETE FROM server_workers WHERE worker_id = 'b'")
            assert await woken() == {"a", "b", "c"}  # none registered: the broadcast
            assert await api._rows("SELECT * FROM server_workers") == []

    asyncio.run(scenario())


def _worker(storage: Any, worker_id: str, concurrency: int) -> tuple[Any, dict[str, Any]]:
    """A ``Worker`` on ``storage`` whose runs, instead of being executed, wait until
    their event in the returned dict (run id -> {"claimed": monotonic time, "done":
    asyncio.Event}) is set."""
    from threadloom.server.worker import Worker

    worker = Worker(SimpleNamespace(ctx=SimpleNamespace(storage=storage)),  # type: ignore[arg-type]
                    concurrency=concurrency, lease_seconds=30.0, worker_id=worker_id)
    runs: dict[str, Any] = {}

    async def execute(run: dict[str, Any], cancel: dict[str, str]) -> None:
        done = asyncio.Event()
        runs[run["run_id"]] = {"claimed": time.monotonic(), "done": done}
        try:
            await done.wait()
        finally:
            worker._running.pop(run["run_id"], None)
            worker._freed.set()

    worker._execute = execute  # type: ignore[method-assign]
    return worker, runs


async def _claimed(runs: dict[str, Any], run_id: str, within: float) -> float:
    """When the run was claimed (waiting up to ``within`` seconds for it)."""
    deadline = time.monotonic() + within
    while run_id not in runs:
        assert time.monotonic() < deadline, f"run {run_id} not claimed in {within} s"
        await asyncio.sleep(0.01)
    return runs[run_id]["claimed"]


def test_a_run_meant_for_a_worker_that_does_not_claim_it_is_claimed_by_another(
    fresh_postgres_database: str,
) -> None:
    """Runs notified to a registered worker that never claims (its process hears them
    but is stuck; or it died without deleting its record, which is still live) are
    claimed by another worker within about a second (``full_scan_seconds``)."""
    async def scenario() -> None:
        async with _storages(fresh_postgres_database, 2) as (api, deaf, live):
            await deaf.register_worker("deaf", 8)
            await api._rows(  # gone without unregistering: nobody listens on its channel
                "INSERT INTO server_workers VALUES ('ghost', 'threadloom_worker_ghost', 8, "
                "now(), now() + interval '1 hour')")
            await _queue(api)  # the live worker is the busiest: never the one woken
            await _queue(api)
            assert len(await api.claim_runs("live", 30.0, 2)) == 2
            worker, runs = _worker(live, "live", 8)
            await worker.start()
            try:
                await asyncio.sleep(0.2)  # its first look at every queued run: nothing
                waits = []
                for _ in range(4):
                    run_id, seq = await _queue(api)
                    queued = time.monotonic()
                    waits.append(await _claimed(runs, run_id, 3.0) - queued)
                    assert str(seq) not in [p for _, p in live.heard]  # meant for another
                assert max(waits) < 1.8, waits  # each by the live worker's next full look
                row = await api._one("SELECT count(*) FROM server_runs WHERE "
                                     "worker_id = 'live' AND status = 'running'")
                assert row == (6,)
            finally:
                await worker.stop()

    asyncio.run(scenario())


def test_a_run_meant_for_a_full_worker_goes_to_the_first_to_free_a_slot(
    fresh_postgres_database: str,
) -> None:
    """Every worker full: the run is notified to the least loaded, which cannot take
    it; the first worker to free a slot claims it at once (a full look: it heard of
    nothing)."""
    async def scenario() -> None:
        async with _storages(fresh_postgres_database, 2) as (api, sa, sb):
            a, a_runs = _worker(sa, "a", 1)
            b, b_runs = _worker(sb, "b", 1)
            await a.start()
            try:
                first, _ = await _queue(api)
                await _claimed(a_runs, first, 3.0)
                await b.start()
                second, _ = await _queue(api)  # a full: meant for b
                await _claimed(b_runs, second, 3.0)
                for _ in range(2):  # b the busier (claimed outside its Worker)
                    await _queue(api)
                assert len(await api.claim_runs("b", 30.0, 2)) == 2
                third, seq = await _queue(api)
                assert await _who_heard([sa, sb], seq) == {0}  # a: full, less loaded
                await asyncio.sleep(1.2)  # a full look or two by nobody: all full
                assert third not in a_runs and third not in b_runs
                b_runs[second]["done"].set()  # b frees its slot
                freed = time.monotonic()
                assert await _claimed(b_runs, third, 3.0) - freed < 0.5
            finally:
                await b.stop()
                await a.stop()

    asyncio.run(scenario())


def test_a_worker_registers_while_it_runs(fresh_postgres_database: str) -> None:
    """``Worker.start`` registers it (its process's channel, its slots), the record is
    renewed while it runs, and ``Worker.stop`` deletes it."""
    async def scenario() -> None:
        async with _storages(fresh_postgres_database, 1, registration_seconds=0.2
                             ) as (api, storage):
            worker, _ = _worker(storage, "w1", 3)
            await worker.start()
            try:
                row = await api._one("SELECT channel, slots, seen_at, live_until - seen_at "
                                     "FROM server_workers WHERE worker_id = 'w1'")
                assert row is not None and row[:2] == (storage.channel, 3)
                assert row[3].total_seconds() == pytest.approx(0.6)
                await asyncio.sleep(0.7)
                renewed = await api._one(
                    "SELECT seen_at FROM server_workers WHERE worker_id = 'w1'")
                assert renewed is not None and renewed[0] > row[2]
            finally:
                await worker.stop()
            assert await api._rows("SELECT * FROM server_workers") == []
            await asyncio.sleep(0.5)  # and nothing renews it after
            assert await api._rows("SELECT * FROM server_workers") == []

    asyncio.run(scenario())


def test_a_worker_whose_registration_fails_still_claims_runs(
    fresh_postgres_database: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """The registration's failure is logged; unregistered, the worker hears of queued
    runs on the broadcast channel and claims them; once a renewal succeeds, it is
    registered."""
    async def scenario() -> None:
        async with _storages(fresh_postgres_database, 1, registration_seconds=0.2
                             ) as (api, storage):
            rows = storage._rows
            failing = True

            async def refusing(sql: str, args: Any = ()) -> list[tuple]:
                if failing and "INSERT INTO server_workers" in sql:
                    raise RuntimeError("the database refused the registration")
                return await rows(sql, args)

            storage._rows = refusing
            worker, runs = _worker(storage, "w1", 2)
            with caplog.at_level(logging.WARNING, logger="threadloom.server"):
                await worker.start()
            try:
                assert "registering worker(s) w1 failed" in caplog.text
                run_id, _ = await _queue(api)
                await _claimed(runs, run_id, 0.5)  # woken by the broadcast: at once
                failing = False
                for _ in range(100):
                    if await api._rows("SELECT 1 FROM server_workers"):
                        break
                    await asyncio.sleep(0.02)
                run_id, seq = await _queue(api)
                await _claimed(runs, run_id, 0.5)
                assert (storage.channel, str(seq)) in storage.heard
            finally:
                await worker.stop()

    asyncio.run(scenario())


def test_the_registration_migrates_a_database_of_the_previous_version(
    fresh_postgres_database: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database set up before workers registered (the previous schema version, a run
    queued) gets ``server_workers`` and the index of running runs by worker on the next
    setup; its queued run is then notified to a registered worker and claimed."""
    from threadloom.server.storage import postgres

    latest = list(postgres.MIGRATIONS)
    # the schema before the version that made server_workers
    workers = next(i for i, m in enumerate(latest) if "server_workers (" in m[0])

    async def scenario() -> None:
        monkeypatch.setattr(postgres, "MIGRATIONS", latest[:workers])
        async with _storages(fresh_postgres_database, 0) as (old,):
            assert await old._rows("SELECT to_regclass('server_workers')") == [(None,)]
            # a run queued then (by the statement of the time: no worker to choose)
            before, now = new_id(), now_iso()
            await old._rows(
                f"{postgres._INSERT_RUN} RETURNING pg_notify(%s, seq::text)",
                (before, await _thread(old), "a", now, now, "{}", "{}", "enqueue", 0.0,
                 postgres.WORK),
            )
        monkeypatch.setattr(postgres, "MIGRATIONS", latest)
        async with _storages(fresh_postgres_database, 1) as (api, worker):
            assert await api._one("SELECT max(v) FROM server_migrations") == (len(latest) - 1,)
            assert await api._one("SELECT to_regclass('server_runs_running_worker') "
                                  "IS NOT NULL") == (True,)
            await worker.register_worker("w", 8)
            after, seq = await _queue(api)
            assert await _who_heard([worker], seq) == {0}
            claimed = await worker.claim_runs("w", 30.0, 4)
            assert [r["run_id"] for r in claimed] == [before, after]

    asyncio.run(scenario())


def test_choosing_the_worker_to_wake_counts_running_runs_by_index(
    fresh_postgres_database: str,
) -> None:
    """The queueing statement's choice of a worker counts each live worker's running
    runs through the partial index of running runs by worker - not walking the table of
    every run the server ever had."""
    import psycopg

    from threadloom.server.storage.postgres import _WAKE, WORK, PostgresStorage

    async def setup() -> None:
        storage = PostgresStorage(fresh_postgres_database, pool_size=2)
        await storage.setup()
        await storage.close()

    asyncio.run(setup())
    with psycopg.connect(fresh_postgres_database) as conn:
        # a server's table: thousands of runs that ended (their worker_id cleared),
        # some queued, some running on four workers
        conn.execute(
            "INSERT INTO server_runs (run_id, thread_id, assistant_id, created_at, "
            "updated_at, status, metadata, kwargs, worker_id) SELECT 'r' || i, 't' || i, "
            "'a', '', '', CASE WHEN i % 100 = 0 THEN 'running' WHEN i % 100 = 1 THEN "
            "'pending' ELSE 'success' END, '{}', '{}', CASE WHEN i % 100 = 0 THEN 'w' || "
            "(i % 4) END FROM generate_series(1, 20000) AS i")
        conn.execute("INSERT INTO server_workers SELECT 'w' || i, 'threadloom_worker_' || i, "
                      "8, now(), now() + interval '1 min' FROM generate_series(0, 3) AS i")
        conn.execute("ANALYZE server_runs")
        conn.execute("ANALYZE server_workers")
        plan = "\n".join(row[0] for row in conn.execute(
            f"EXPLAIN (COSTS OFF) SELECT {_WAKE} FROM (SELECT 'g'::text AS graph_id) g",
            (WORK,)))
        assert conn.execute(f"SELECT {_WAKE} FROM (SELECT 'g'::text AS graph_id) g",
                            (WORK,)).fetchone()[0].startswith(
            "threadloom_worker_")
        conn.rollback()
    assert "server_runs_running_worker" in plan, plan
    assert "Seq Scan on server_runs" not in plan, plan
