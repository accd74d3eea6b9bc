"""The server on PostgreSQL with separate worker processes, one of them SIGKILLed mid-run.

The API server (uvicorn on 127.0.0.1, in this process: on PostgreSQL it only queues
runs) and three ``threadloom worker`` processes share a new database. N threads
(``THREADLOOM_TEST_WORKER_THREADS``, default 24; the issue's figure is 200) each pause
for an approval; all are approved at once through the official client; while the
workers run them, the one holding the most running runs is killed with SIGKILL. Its
runs lose their lease, the other workers take them over and finish them from their last
checkpoint. Then every thread has finished exactly once: two successful runs, each
node's effect once in its state, no node run twice except where the killed worker was
cut short, alice's approval in its audit log once (also where the worker taking over a
run answers again because the first attempt died before its first checkpoint), the
log's hash chain whole.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
THREADS = int(os.environ.get("THREADLOOM_TEST_WORKER_THREADS", "24"))
WORKERS = 3
NODES = ["prepare", "approve", "work", "finish"]


def _spawn(folder: Path, database: str, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
    return subprocess.Popen(
        [sys.executable, "-m", "threadloom.cli", *argv, "--config",
         str(folder / "langgraph.json"), "--database", database, "--log-level", "warning"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stderr.read().decode(errors="replace") if proc.stderr else ""


def _running_by_worker(database: str) -> Counter:
    """Running runs per worker pid (read from the run queue)."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT worker_id FROM server_runs WHERE status = 'running'"
        ).fetchall()
    return Counter(int(r[0].split(":")[1]) for r in rows)


def _registered(database: str) -> set[int]:
    """The pids of the workers registered (``server_workers``)."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        rows = conn.execute("SELECT worker_id FROM server_workers").fetchall()
    return {int(r[0].split(":")[1]) for r in rows}


async def _kill_a_busy_worker(database: str, workers: list[subprocess.Popen]) -> int:
    """SIGKILL the worker holding the most running runs (at least two); its pid."""
    pids = {p.pid for p in workers}
    while True:
        running = await asyncio.to_thread(_running_by_worker, database)
        busy = [(n, pid) for pid, n in running.items() if pid in pids and n >= 2]
        if busy:
            pid = max(busy)[1]
            os.kill(pid, signal.SIGKILL)
            return pid
        await asyncio.sleep(0.02)


def test_workers_take_over_the_runs_of_a_killed_worker(tmp_path: Path,
                                                       module_postgres_database: str) -> None:
    from threadloom.server import background_server, load_config

    database = module_postgres_database
    (tmp_path / "graphs.py").write_text((HERE / "graphs.py").read_text())
    (tmp_path / "langgraph.json").write_text(json.dumps({
        "graphs": {"ledger": "./graphs.py:ledger"},
        "auth": {"api_keys": {"key-alice": {"identity": "alice", "permissions": ["finance"]}}},
    }))
    workers = [
        _spawn(tmp_path, database, "worker", "--concurrency", "8", "--lease-seconds", "2")
        for _ in range(WORKERS)
    ]
    try:
        config = load_config(tmp_path / "langgraph.json", database=database)
        # the API process: uvicorn on 127.0.0.1, queueing runs only (PostgreSQL's default)
        with background_server(config) as url:
            assert url.server.worker is None
            killed = asyncio.run(_scenario(url, database, workers))
        for proc in workers:
            if proc.pid != killed:
                assert proc.poll() is None, "a surviving worker stopped"
        # each registered (a queued run's notification goes to one of them)
        pids = {p.pid for p in workers}
        assert _registered(database) & pids == pids
    finally:
        logs = [_stop(p) for p in workers]
    _check(database, killed, logs)
    # those stopped by SIGTERM deleted their records; the killed one's is left to go stale
    assert _registered(database) & pids == {killed}


async def _scenario(url: str, database: str, workers: list[subprocess.Popen]) -> int:
    from langgraph_sdk import get_client

    client = get_client(url=url, api_key="key-alice", timeout=120)
    try:
        return await _approve_all(client, database, workers)
    finally:
        await client.aclose()


async def _approve_all(client: Any, database: str, workers: list[subprocess.Popen]) -> int:
    limit = asyncio.Semaphore(32)

    async def pause(amount: int) -> tuple[str, str]:
        async with limit:
            tid = (await client.threads.create(metadata={"test": "workers"}))["thread_id"]
            out = await client.runs.wait(tid, "ledger", input={"amount": amount, "log": []})
            [pending] = out["__interrupt__"]
            return tid, pending["id"]

    paused = await asyncio.gather(*(pause(i) for i in range(THREADS)))
    found = await client.threads.search(status="interrupted", metadata={"test": "workers"},
                                        limit=THREADS + 10)
    assert len(found) == THREADS

    async def approve(tid: str) -> tuple[str, str]:
        async with limit:
            run = await client.runs.create(tid, "ledger", command={"resume": {"type": "accept"}})
            return tid, run["run_id"]

    resumes = await asyncio.gather(*(approve(tid) for tid, _ in paused))
    killed = await _kill_a_busy_worker(database, workers)

    async def finished(tid: str, run_id: str) -> None:
        async with limit:
            out = await client.runs.join(tid, run_id)
            assert out["log"] == ["prepare", "approved", "work", "finish"], (tid, out)

    await asyncio.gather(*(finished(tid, rid) for tid, rid in resumes))
    for tid, _ in paused:
        thread = await client.threads.get(tid)
        assert thread["status"] == "idle", thread
        runs = await client.runs.list(tid)
        assert [r["status"] for r in runs] == ["success", "success"], runs
        items = await client.store.search_items(["executions", tid], limit=100)
        _executions[tid] = [i["value"] for i in items["items"]]
    return killed


_executions: dict[str, list[dict]] = {}


def _check(database: str, killed: int, logs: list[str]) -> None:
    from threadloom.checkpoint.postgres import PostgresSaver
    from threadloom.hitl.approval_hooks import checkpoint_anchors
    from threadloom.hitl.audit import verify_chain

    assert len(_executions) == THREADS
    taken_over = set()
    for tid, records in _executions.items():
        by_survivors = Counter(r["node"] for r in records if r["pid"] != killed)
        everywhere = Counter(r["node"] for r in records)
        for node in ("prepare", "work", "finish"):
            assert everywhere[node] >= 1, (tid, node, records)
            # a node ran twice only when the killed worker had run it (and died before
            # its checkpoint): never twice on the surviving workers
            assert by_survivors[node] <= 1, (tid, node, records)
        if any((r["attempt"] or 1) > 1 for r in records):
            taken_over.add(tid)
    assert taken_over, "no run was taken over: the kill hit no run mid-way"
    with PostgresSaver.from_conn_string(database) as saver:
        for tid in _executions:
            log = saver.list_audit(tid)
            decisions = [r for r in log if r.get("event") == "decision"]
            assert {(d["who"]["id"], d["decision"], d["request_id"]) for d in decisions} == {
                ("alice", "accept", decisions[0]["request_id"])
            }, (tid, log)
            # once - even where the killed worker recorded the answer and died before the
            # run's first checkpoint: the run taken over answers again, recorded once
            assert len(decisions) == 1, (tid, log)
            # the log is whole: its hash chain, its head and the checkpoints' anchors agree
            verify_chain(log, head=saver.audit_head(tid),
                         anchors=checkpoint_anchors(saver, tid))
    # nobody but the killed worker logged an error
    for text in logs:
        assert "Traceback" not in text, text


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def test_a_cancel_reaches_the_worker_taking_over_the_run(module_postgres_database: str) -> None:
    """A run cancelled while its worker is dead (the cancel found nobody to stop) is
    cancelled by the worker that takes it over, not run."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config
    from threadloom.server.storage.postgres import PostgresStorage

    config = load_config(None, graphs={"plan": "./graphs.py:plan"}, base_dir=HERE,
                         database=module_postgres_database, dev=True, lease_seconds=1.0)
    with background_server(config) as api:  # queues runs, executes none
        client = get_sync_client(url=api, api_key=None)
        tid = client.threads.create()["thread_id"]
        run = client.runs.create(tid, "plan", input={"messages": []})

        async def claim_and_die() -> None:
            dead = PostgresStorage(module_postgres_database)
            await dead.setup()
            try:
                claimed = await dead.claim_run("dead-worker", lease_seconds=1.0)
                assert claimed is not None and claimed["run_id"] == run["run_id"]
            finally:
                await dead.close()

        asyncio.run(claim_and_die())
        assert client.runs.get(tid, run["run_id"])["status"] == "running"
        client.runs.cancel(tid, run["run_id"])  # nobody holds it to stop it
        with background_server(config, run_worker=True):  # a worker comes up
            client.runs.join(tid, run["run_id"])
        done = client.runs.get(tid, run["run_id"])
        assert done["status"] == "interrupted"
        assert client.threads.get_state(tid)["values"] == {}  # the graph never ran


def test_a_run_taken_over_before_its_first_checkpoint_records_its_answer_once(
    tmp_path: Path, module_postgres_database: str
) -> None:
    """The worker applying an answer records it in the audit log, then is SIGKILLed
    before the run's first checkpoint; the worker taking the run over answers the same
    interrupt again - and the log still holds the answer once (the run is anchored on
    the first record), with its hash chain whole."""
    from langgraph_sdk import get_sync_client

    from threadloom.checkpoint.postgres import PostgresSaver
    from threadloom.hitl.approval_hooks import checkpoint_anchors
    from threadloom.hitl.audit import verify_chain
    from threadloom.server import background_server, load_config

    database = module_postgres_database
    (tmp_path / "graphs.py").write_text((HERE / "graphs.py").read_text())
    (tmp_path / "langgraph.json").write_text(json.dumps({
        "graphs": {"slow_payment": "./graphs.py:slow_payment"},
        "auth": {"api_keys": {"key-alice": {"identity": "alice", "permissions": ["finance"]}}},
    }))
    workers = [_spawn(tmp_path, database, "worker", "--lease-seconds", "1") for _ in range(2)]
    try:
        config = load_config(tmp_path / "langgraph.json", database=database)
        with background_server(config) as url, PostgresSaver.from_conn_string(database) as log:
            client = get_sync_client(url=url, api_key="key-alice", timeout=60)
            tid = client.threads.create()["thread_id"]
            client.runs.wait(tid, "slow_payment", input={"amount": 7, "work_seconds": 3})
            run = client.runs.create(tid, "slow_payment", command={"resume": {"type": "accept"}})
            # the answer is recorded and the node is working: kill the worker running it
            for _ in range(600):
                decided = [r for r in log.list_audit(tid) if r.get("event") == "decision"]
                running = _running_by_worker(database)
                if decided and running:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("the answer was never recorded by a running worker")
            (pid,) = running
            assert client.threads.get_state(tid)["next"] == ["pay"]  # no checkpoint yet
            os.kill(pid, signal.SIGKILL)
            client.runs.join(tid, run["run_id"])
            assert client.threads.get_state(tid)["values"]["outcome"] == "paid"
            records = log.list_audit(tid)
            decisions = [r for r in records if r.get("event") == "decision"]
            assert len(decisions) == 1, decisions
            assert [(d["who"]["id"], d["decision"], d["run_id"]) for d in decisions] == [
                ("alice", "accept", run["run_id"])], records
            verify_chain(records, head=log.audit_head(tid),
                         anchors=checkpoint_anchors(log, tid))
            runs = {r["run_id"]: r for r in client.runs.list(tid)}
            assert runs[run["run_id"]]["status"] == "success"
    finally:
        for proc in workers:
            _stop(proc)


def test_a_worker_runs_on_uvloop_when_installed(tmp_path: Path,
                                                module_postgres_database: str) -> None:
    """``threadloom worker`` runs its event loop on uvloop (the server extra), as
    ``threadloom serve`` does through uvicorn; it says which in its ready line."""
    pytest.importorskip("uvloop")
    (tmp_path / "graphs.py").write_text((HERE / "graphs.py").read_text())
    (tmp_path / "langgraph.json").write_text(json.dumps({
        "graphs": {"ledger": "./graphs.py:ledger"}}))
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "threadloom.cli", "worker", "--config",
         str(tmp_path / "langgraph.json"), "--database", module_postgres_database,
         "--log-level", "info"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if b" ready " in line:
                assert b"(event loop: uvloop)" in line, line
                break
        else:
            raise AssertionError("the worker never said it was ready")
    finally:
        _stop(proc)


def test_a_worker_whose_event_loop_blocked_past_its_lease_hands_the_run_over(
    tmp_path: Path, module_postgres_database: str
) -> None:
    """The run's node blocks its worker's event loop (``time.sleep`` in an async node)
    three times the lease: the other worker takes the run over while the first still
    holds the thread's run lock. The run is not failed for it: it goes back to the
    queue until the first worker lets go, and then ends once - a success, every step's
    effect in the thread's state once, nobody logging an error."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    database = module_postgres_database
    (tmp_path / "graphs.py").write_text((HERE / "graphs.py").read_text())
    (tmp_path / "langgraph.json").write_text(
        json.dumps({"graphs": {"stalling": "./graphs.py:stalling"}}))
    workers = [_spawn(tmp_path, database, "worker", "--lease-seconds", "1") for _ in range(2)]
    logs: list[str] = []
    try:
        config = load_config(tmp_path / "langgraph.json", database=database, dev=True)
        with background_server(config) as url:
            client = get_sync_client(url=url, api_key=None, timeout=60)
            for worker in workers:  # both up and claiming
                _wait_registered(database, worker.pid)
            tid = client.threads.create()["thread_id"]
            result = client.runs.wait(tid, "stalling", input={"stall_seconds": 3})
            (run,) = client.runs.list(tid)
            assert run["status"] == "success", run
            state = client.threads.get_state(tid)
            assert result == state["values"]  # the output, not an error
            steps = state["values"]["steps"]
            assert len(steps) == 2 and steps[0].startswith("stall (attempt ") \
                and steps[1] == "after", steps
            assert _attempts(database, run["run_id"]) > 1  # it was taken over
    finally:
        logs = [_stop(worker) for worker in workers]
    for text in logs:
        assert "Traceback" not in text and "ERROR" not in text, text


def _wait_registered(database: str, pid: int) -> None:
    for _ in range(300):
        if pid in _registered(database):
            return
        time.sleep(0.05)
    raise AssertionError(f"worker {pid} never registered")


def _attempts(database: str, run_id: str) -> int:
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute("SELECT attempt FROM server_runs WHERE run_id = %s",
                           (run_id,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_worker_stops_a_run_whose_lease_it_finds_lost(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another worker holds the run now (here: its row says so): at its next renewal
    the worker stops its own execution of it - the graph goes no further, nothing of
    the run's end is written - and says why in its log."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    if backend == "sqlite":
        database = str(tmp_path / "server.db")
    else:
        database = request.getfixturevalue("fresh_postgres_database")
    config = load_config(None, graphs={"slow": "./graphs.py:slow"}, base_dir=HERE,
                         database=database, dev=True, lease_seconds=1.5)
    with background_server(config, run_worker=True) as url:
        client = get_sync_client(url=url, api_key=None, timeout=30)
        tid = client.threads.create()["thread_id"]
        run = client.runs.create(tid, "slow", input={"log": []},
                                 config={"configurable": {"tag": "t"}})
        for _ in range(500):  # at the gate: "first" done, "second" waiting
            if client.threads.get_state(tid)["next"] == ["second"]:
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the run never reached its gate")
        _steal(backend, database, run["run_id"])
        time.sleep(2.0)  # renewals every 0.5 s
        client.store.put_item(["gates"], "t", {"open": True})
        time.sleep(1.0)
        # the graph went no further here, and nothing was recorded as the run's end
        assert client.threads.get_state(tid)["values"] == {"log": ["first:t"]}
        assert client.runs.get(tid, run["run_id"])["status"] == "running"
    assert any("did not renew its lease" in r.getMessage() for r in caplog.records)


def _steal(backend: str, database: str, run_id: str) -> None:
    """Give the run to another worker, as a takeover after its lease ran out does (a
    worker that keeps its lease: for an hour)."""
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(database) as conn:
            conn.execute("UPDATE server_runs SET status = 'running', worker_id = 'thief', "
                         "lease_expires_at = ? WHERE run_id = ?", (time.time() + 3600, run_id))
        return
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE server_runs SET status = 'running', worker_id = 'thief', "
                     "lease_expires_at = clock_timestamp() + interval '1 hour' "
                     "WHERE run_id = %s", (run_id,))


def test_a_worker_that_lost_the_run_lock_to_the_worker_holding_the_run_writes_nothing(
    fresh_postgres_database: str,
) -> None:
    """The worker's run-lock session ends mid-run (the database dropped it) and the
    worker that took the run over holds the thread's run lock now: at its next write the
    graph stops (``RunLockLostError``), and the first worker adds nothing to the run -
    no error event in its stream, no end, no state."""
    import psycopg
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    database = fresh_postgres_database
    config = load_config(None, graphs={"slow": "./graphs.py:slow"}, base_dir=HERE,
                         database=database, dev=True)
    with background_server(config, run_worker=True) as url, \
            psycopg.connect(database, autocommit=True) as taker:
        client = get_sync_client(url=url, api_key=None, timeout=30)
        tid = client.threads.create()["thread_id"]
        run = client.runs.create(tid, "slow", input={"log": []}, stream_resumable=True,
                                 config={"configurable": {"tag": "t"}})
        for _ in range(500):
            if client.threads.get_state(tid)["next"] == ["second"]:
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the run never reached its gate")
        # the run lock: the one single-key advisory lock held
        ((pid, high, low),) = taker.execute(
            "SELECT pid, classid::bigint, objid::bigint FROM pg_locks WHERE locktype = "
            "'advisory' AND granted AND objsubid = 1").fetchall()
        key = (high << 32 | low) - (1 << 64) * (high >= 1 << 31)  # as a signed bigint
        taker.execute("SELECT pg_terminate_backend(%s)", (pid,))
        taker.execute("SELECT pg_advisory_lock(%s)", (key,))  # the taker's run lock
        _steal("postgres", database, run["run_id"])
        client.store.put_item(["gates"], "t", {"open": True})
        time.sleep(1.5)
        events = [row[0] for row in taker.execute(
            "SELECT event FROM server_run_events WHERE run_id = %s ORDER BY id",
            (run["run_id"],))]
        assert "error" not in events and "" not in events, events  # nor its end
        assert client.runs.get(tid, run["run_id"])["status"] == "running"
        assert client.threads.get_state(tid)["values"] == {"log": ["first:t"]}


def test_a_stopped_worker_hands_its_runs_over_at_once(
    tmp_path: Path, module_postgres_database: str
) -> None:
    """SIGTERM (a deploy, a scale-down) to the worker running a run: it stops the run
    and puts it back in the queue, and the other worker takes it over from its last
    checkpoint at once - not when the stopped worker's 30 s lease has run out."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    database = module_postgres_database
    (tmp_path / "graphs.py").write_text((HERE / "graphs.py").read_text())
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {"slow": "./graphs.py:slow"}}))
    workers = [_spawn(tmp_path, database, "worker") for _ in range(2)]  # 30 s leases
    try:
        config = load_config(tmp_path / "langgraph.json", database=database, dev=True)
        with background_server(config) as url:
            client = get_sync_client(url=url, api_key=None, timeout=60)
            tid = client.threads.create()["thread_id"]
            tag = f"handover-{tid}"
            run = client.runs.create(tid, "slow", input={"log": []},
                                     config={"configurable": {"tag": tag}})
            for _ in range(1000):  # at its gate, on one of the workers
                running = _running_by_worker(database)
                if running and client.threads.get_state(tid)["next"] == ["second"]:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("the run never reached its gate")
            (pid,) = running
            stopped = next(w for w in workers if w.pid == pid)
            stopped.send_signal(signal.SIGTERM)
            assert stopped.wait(timeout=20) == 0
            client.store.put_item(["gates"], tag, {"open": True})
            started = time.monotonic()
            while client.runs.get(tid, run["run_id"])["status"] in ("pending", "running"):
                assert time.monotonic() - started < 10, "not taken over at once"
                time.sleep(0.05)
            assert client.runs.get(tid, run["run_id"])["status"] == "success"
            # continued from the checkpoint after "first": each node once
            assert client.threads.get_state(tid)["values"]["log"] == [f"first:{tag}",
                                                                     f"second:{tag}"]
            assert _attempts(database, run["run_id"]) == 2
    finally:
        logs = [_stop(worker) for worker in workers]
    for text in logs:
        assert "Traceback" not in text, text


def test_a_worker_leaves_the_runs_of_graphs_it_does_not_serve_queued(
    tmp_path: Path, module_postgres_database: str
) -> None:
    """A worker whose config lacks a graph (deployed before the graph was added, or
    dedicated to other graphs) does not take that graph's runs - it used to, and failed
    them: they wait in the queue until a worker serving the graph takes them."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    database = module_postgres_database
    folders = {}
    for name, graphs in {"api": {"plan": "./graphs.py:plan", "slow": "./graphs.py:slow"},
                         "old": {"plan": "./graphs.py:plan"},
                         "new": {"slow": "./graphs.py:slow"}}.items():
        folder = folders[name] = tmp_path / name
        folder.mkdir()
        (folder / "graphs.py").write_text((HERE / "graphs.py").read_text())
        (folder / "langgraph.json").write_text(json.dumps({"graphs": graphs}))
    workers = [_spawn(folders["old"], database, "worker")]
    try:
        config = load_config(folders["api"] / "langgraph.json", database=database, dev=True)
        with background_server(config) as url:
            client = get_sync_client(url=url, api_key=None, timeout=60)
            _wait_registered(database, workers[0].pid)
            tid = client.threads.create()["thread_id"]
            tag = f"served-{tid}"
            run = client.runs.create(tid, "slow", input={"log": []},
                                     config={"configurable": {"tag": tag}})
            time.sleep(2.0)  # two looks at every queued run, at least
            assert client.runs.get(tid, run["run_id"])["status"] == "pending"
            workers.append(_spawn(folders["new"], database, "worker"))
            client.store.put_item(["gates"], tag, {"open": True})
            out = client.runs.join(tid, run["run_id"])
            assert out["log"] == [f"first:{tag}", f"second:{tag}"]
            assert client.runs.get(tid, run["run_id"])["status"] == "success"
            assert _running_by_worker(database) == Counter()
            assert _attempts(database, run["run_id"]) == 1
    finally:
        logs = [_stop(worker) for worker in workers]
    for text in logs:
        assert "Traceback" not in text, text


def test_a_run_whose_database_connections_drop_goes_on_from_its_last_checkpoint(
    fresh_postgres_database: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Every connection of the server's database is dropped mid-run (a database restart,
    a failover; here every backend terminated) and the run's next read fails on one:
    the run goes back to the queue and its next attempt goes on from its last
    checkpoint - a success, each step's effect once - instead of ending in error with
    the database's ``AdminShutdown``. The server logs a warning, no traceback."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    database = fresh_postgres_database
    config = load_config(None, graphs={"dropping": "./graphs.py:dropping"}, base_dir=HERE,
                         database=database, dev=True)
    with caplog.at_level("WARNING", logger="threadloom.server"), \
            background_server(config, run_worker=True) as url:
        client = get_sync_client(url=url, api_key=None, timeout=60)
        tid = client.threads.create()["thread_id"]
        out = client.runs.wait(tid, "dropping", input={"steps": []},
                               config={"configurable": {"database": database}})
        assert out == {"steps": ["before", "drop (attempt 2)", "after"]}, out
        (run,) = client.runs.list(tid)
        assert run["status"] == "success"
        assert _attempts(database, run["run_id"]) == 2
        # the server serves on (its other connections, found dropped, were replaced)
        again = client.threads.create()["thread_id"]
        assert client.runs.wait(again, "dropping", input={"steps": []}, config={
            "configurable": {"database": database}})["steps"][1] == "drop (attempt 2)"
    went_away = [r for r in caplog.records if "the database went away" in r.getMessage()]
    assert went_away, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
