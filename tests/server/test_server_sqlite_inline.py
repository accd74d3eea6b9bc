"""``SqliteStorage`` runs its statements (and the saver's writes during a run) on the
event loop when the connection is free and nothing can make them wait
(``threadloom.server.storage._sqlite_inline``), and keeps assistants' rows by id."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from tests.server.test_server_storage_end_run import _thread
from threadloom.server.records import new_id, now_iso
from threadloom.server.storage.sqlite import SqliteStorage


async def _storage(tmp_path: Path) -> SqliteStorage:
    storage = SqliteStorage(str(tmp_path / "server.db"))
    await storage.setup()
    return storage


def _assistant(assistant_id: str, name: str) -> dict[str, Any]:
    now = now_iso()
    return {"assistant_id": assistant_id, "graph_id": "g", "name": name,
            "description": None, "config": {}, "context": {}, "metadata": {},
            "version": 1, "created_at": now, "updated_at": now}


async def test_statements_run_on_the_loop_when_the_connection_is_free(tmp_path) -> None:
    """Reads and writes run in the calling thread (no hop to the database thread) -
    and still let the other tasks run once, as a hop did: a task looping over reads
    does not starve the task it waits for."""
    storage = await _storage(tmp_path)
    try:
        hops: list[Any] = []
        call = storage._call

        async def counted(fn: Any, *args: Any) -> Any:
            hops.append(fn)
            return await call(fn, *args)

        storage._call = counted  # type: ignore[method-assign]
        thread_id = await _thread(storage)
        await storage.update_thread(thread_id, status="busy")
        assert (await storage.get_thread(thread_id))["status"] == "busy"
        assert hops == []

        async def flip() -> None:
            await storage.update_thread(thread_id, status="idle")

        flipping = asyncio.create_task(flip())
        looks = 0
        while (await storage.get_thread(thread_id))["status"] != "idle":
            looks += 1
            assert looks < 1000, "the looking task never let the other one run"
        await flipping
    finally:
        await storage.close()


async def test_a_write_waits_in_a_thread_while_another_process_writes(tmp_path) -> None:
    """With another connection holding the file's write lock, a write does not block
    the event loop: it waits (the connection's busy timeout) in the database thread,
    then lands; the loop keeps serving meanwhile."""
    storage = await _storage(tmp_path)
    try:
        thread_id = await _thread(storage)
        other = sqlite3.connect(str(tmp_path / "server.db"), isolation_level=None,
                                check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(tick())
        started = time.monotonic()
        release.start()
        await storage.update_thread(thread_id, status="busy")
        waited = time.monotonic() - started
        ticking.cancel()
        release.join()
        other.close()
        assert waited >= 0.4, "the write did not wait for the other writer"
        assert ticks >= 10, f"the event loop was blocked while the write waited ({ticks})"
        assert (await storage.get_thread(thread_id))["status"] == "busy"

        def timeout() -> int:
            return storage._conn.execute("PRAGMA busy_timeout").fetchone()[0]

        # on the loop the connection never waits; any other holder waits as configured
        assert storage._inline.run(timeout) == 0
        with storage._lock:
            assert timeout() == 30000
        assert storage._inline.run(timeout) == 0
    finally:
        await storage.close()


async def test_assistant_rows_kept_by_id_follow_every_change(tmp_path) -> None:
    """``get_assistant`` answers from the rows it read, and every change to an
    assistant (update, version switch, delete, create again) is seen at once."""
    storage = await _storage(tmp_path)
    try:
        aid = new_id()
        assert await storage.get_assistant(aid) is None
        await storage.create_assistant(_assistant(aid, "first"), if_exists="raise")
        assert (await storage.get_assistant(aid))["name"] == "first"
        assert aid in storage._assistant_rows
        got = await storage.get_assistant(aid)
        got["config"]["mutated"] = True  # a caller's changes stay its own
        assert (await storage.get_assistant(aid))["config"] == {}
        await storage.update_assistant(aid, {"name": "second"})
        assert (await storage.get_assistant(aid))["name"] == "second"
        assert (await storage.get_assistant(aid))["version"] == 2
        await storage.set_assistant_version(aid, 1)
        assert (await storage.get_assistant(aid))["name"] == "first"
        assert await storage.delete_assistant(aid)
        assert await storage.get_assistant(aid) is None
        await storage.create_assistant(_assistant(aid, "again"), if_exists="raise")
        assert (await storage.get_assistant(aid))["name"] == "again"
    finally:
        await storage.close()
