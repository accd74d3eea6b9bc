"""``threadloom serve`` as a process: config file, --dev, and refusing to start open."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import Forwarder
from threadloom.server.embedded import free_port

HERE = Path(__file__).resolve().parent
# the subprocesses import this checkout's threadloom (not whatever is installed)
SOURCE = str(HERE.parent.parent)


def _write(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "graphs.py").write_text((HERE / "graphs.py").read_text())
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


def test_serve_dev_mode_runs_a_graph(tmp_path: Path) -> None:
    from langgraph_sdk import get_sync_client

    config = _write(tmp_path, {"graphs": {"email": "./graphs.py:email",
                                          "heap": "./graphs.py:heap"}})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "threadloom.cli", "serve", "--config", str(config),
         "--port", str(port), "--dev", "--log-level", "warning"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SOURCE},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ok").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        client = get_sync_client(url=url, api_key=None)
        tid = client.threads.create()["thread_id"]
        out = client.runs.wait(tid, "email", input={"messages": []})
        assert out["messages"][-1]["content"].startswith("Draft:")
        assert (tmp_path / "threadloom.db").is_file()  # the default database file
        # the server process tuned its collector once loaded (see _settle_heap)
        heap = client.runs.wait(client.threads.create()["thread_id"], "heap", input={})
        assert heap["young_threshold"] == 7000 and heap["frozen"] > 1000, heap
        # a second server on the same file is refused, naming the first; the first
        # serves on
        second = subprocess.run(
            [sys.executable, "-m", "threadloom.cli", "serve", "--config", str(config),
             "--port", str(free_port()), "--dev"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": SOURCE},
        )
        assert second.returncode != 0
        assert f"is served by another process (pid {proc.pid})" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr, second.stderr
        assert client.runs.wait(tid, "email", input={"messages": []})["messages"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_one_process_serves_a_sqlite_file(tmp_path: Path) -> None:
    """Its runs' waiters, streams and wake-ups live in the process serving it: a second
    storage on the file is refused (before it opens anything) until the first closes."""
    import asyncio

    from threadloom.server.storage.sqlite import DatabaseInUseError, SqliteStorage

    async def go() -> None:
        path = str(tmp_path / "one.db")
        first = SqliteStorage(path)
        await first.setup()
        with pytest.raises(DatabaseInUseError, match=f"pid {os.getpid()}"):
            SqliteStorage(path)
        await first.close()
        again = SqliteStorage(path)
        await again.setup()
        await again.close()
        # in-memory servers share nothing: as many as wanted
        memory = [SqliteStorage(":memory:") for _ in range(2)]
        for storage in memory:
            await storage.setup()
            await storage.close()

    asyncio.run(go())


def test_serve_refuses_to_start_without_auth(tmp_path: Path) -> None:
    config = _write(tmp_path, {"graphs": {"email": "./graphs.py:email"}})
    proc = subprocess.run(
        [sys.executable, "-m", "threadloom.cli", "serve", "--config", str(config),
         "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": SOURCE},
    )
    assert proc.returncode != 0
    assert "No authentication configured" in proc.stderr


@pytest.mark.parametrize(("argv", "said"), [
    (["worker", "--lease-seconds", "-1"], "--lease-seconds: a positive number of seconds"),
    (["worker", "--lease-seconds", "nan"], "--lease-seconds: a positive number of seconds"),
    (["worker", "--concurrency", "0"], "--concurrency: a whole number of at least 1"),
    (["serve", "--workers", "two"], "--workers: a whole number of at least 1"),
])
def test_worker_settings_out_of_range_are_refused(argv: list[str], said: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A lease of -1 s renewed every -1/3 s (and requeued as often) would hammer the
    database; 0 run slots would take no run: refused before anything starts."""
    from threadloom.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


def test_a_worker_refuses_settings_out_of_range() -> None:
    from types import SimpleNamespace

    from threadloom.server.worker import Worker

    threads: Any = SimpleNamespace(ctx=SimpleNamespace(storage=None))
    with pytest.raises(ValueError, match="at least 1, got 0"):
        Worker(threads, concurrency=0)
    with pytest.raises(ValueError, match="positive number of seconds.*got 0"):
        Worker(threads, lease_seconds=0)
    assert Worker(threads, concurrency=3, lease_seconds=0.5).lease_seconds == 0.5


def test_a_worker_waits_for_its_database_to_come_up(tmp_path: Path,
                                                    fresh_postgres_database: str) -> None:
    """Started before its database accepts connections (both starting at once, a
    failover), a worker says what it waits for - never the URL's password - and
    serves once the database is up; a database that refuses for good (none of that
    name) ends it at once with the reason, not half a minute of pool warnings and a
    traceback."""
    from psycopg.conninfo import conninfo_to_dict

    from threadloom.server import background_server, load_config

    config = _write(tmp_path, {"graphs": {"email": "./graphs.py:email",
                                          "heap": "./graphs.py:heap"}})
    parts = conninfo_to_dict(fresh_postgres_database)
    target = (parts.get("host") or "127.0.0.1", int(parts.get("port") or 5432))
    port = free_port()
    late = (f"postgresql://{parts.get('user', 'postgres')}:hunter2@127.0.0.1:{port}/"
            f"{parts['dbname']}")
    env = {**os.environ, "PYTHONPATH": SOURCE}
    worker = subprocess.Popen(
        [sys.executable, "-m", "threadloom.cli", "worker", "--config", str(config),
         "--database", late, "--log-level", "warning"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    forwarder = None
    try:
        assert worker.stderr is not None
        first = worker.stderr.readline()  # nothing listens yet
        assert f"waiting for the database at 127.0.0.1:{port}/" in first, first
        assert "hunter2" not in first
        forwarder = Forwarder(port, target)  # the database comes up
        with background_server(load_config(config, database=fresh_postgres_database,
                                           dev=True)) as url:
            from langgraph_sdk import get_sync_client

            client = get_sync_client(url=url, api_key=None, timeout=60)
            tid = client.threads.create()["thread_id"]
            out = client.runs.wait(tid, "email", input={"messages": []})  # run by the worker
            assert out["messages"][-1]["content"].startswith("Draft:")
            # the worker process tuned its collector once loaded (see _settle_heap)
            heap = client.runs.wait(client.threads.create()["thread_id"], "heap", input={})
            assert heap["young_threshold"] == 7000 and heap["frozen"] > 1000, heap
        assert worker.poll() is None
    finally:
        worker.terminate()
        rest = worker.communicate(timeout=30)[1]
        if forwarder is not None:
            forwarder.stop()
    assert "Traceback" not in rest and "hunter2" not in rest, rest

    missing = fresh_postgres_database.rsplit("/", 1)[0] + "/threadloom_no_such_database"
    gone = subprocess.run(
        [sys.executable, "-m", "threadloom.cli", "worker", "--config", str(config),
         "--database", missing], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=env)
    assert gone.returncode != 0
    assert "cannot use the database at" in gone.stderr and "does not exist" in gone.stderr
    assert "waiting" not in gone.stderr and "Traceback" not in gone.stderr, gone.stderr
