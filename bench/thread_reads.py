"""Reads of the server's threads as threads pile up: the approval feed's look at what is
pending, and a page of ``threads.search``.

    .venv/bin/python bench/thread_reads.py [--threads 1000,10000] [--waiting 1000,10000]
        [--postgres URL]

The server's approval feed looks at every thread that may have something waiting for a
person once a second (``ApprovalFeed``; on SQLite inside the server's own event loop),
and front ends list threads a page at a time (``threads.search``, limit 10). This fills
a server storage with 20 interrupted threads and N failed ones (state values of ~1 KB,
as a small agent's), then times each read two ways, side by side (median of 7):

* the feed's look: the storage's ``pending_threads`` (the partial index of pending
  threads) against the look it replaced, a search by status reading every interrupted,
  busy or failed thread;
* a search page (the newest 10; the newest 10 failed; a metadata filter nothing
  matches): the storage's paged search against what it did before - every matching
  thread decoded, then the page sliced off (the same search with no limit).

Then, with ``--waiting`` N threads waiting for a person (interrupted, same values), the
feed's look when nothing changed - what a server with many approvals waiting does every
second: the versions of the pending threads (``pending_thread_versions``; records are
read again only for threads that changed) against the look it replaced, every pending
thread's record read and its pending items built.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadloom.server.records import new_id, now_iso  # noqa: E402

STATUSES = ("interrupted", "error", "busy")  # what the look it replaced read
VALUES = {"messages": [{"type": "human", "content": "x" * 200}] * 5, "amount": 10}


async def _fill(storage: Any, failed: int, interrupted: int = 20) -> None:
    stamp = now_iso()
    for i in range(failed + interrupted):
        thread_id = new_id()
        await storage.create_thread({
            "thread_id": thread_id, "created_at": stamp, "updated_at": stamp,
            "state_updated_at": stamp, "metadata": {}, "status": "idle", "config": {},
            "values": None, "interrupts": None, "error": None,
        }, if_exists="raise")
        if i < interrupted:
            interrupts = {"task": [{"id": f"i{i}", "value": {"question": "ok?"}}]}
            await storage.update_thread(thread_id, status="interrupted", values=VALUES,
                                        interrupts=interrupts)
        else:
            await storage.update_thread(thread_id, status="error", values=VALUES,
                                        interrupts={}, error={"error": "ValueError"})


async def _time(look: Any, repeats: int = 7) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await look()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def _figures(storage: Any, failed: int) -> list[tuple[str, float, float, int]]:
    """(read, seconds now, seconds the way it was read before, rows) of each read."""
    await storage.setup()
    try:
        await _fill(storage, failed)

        async def search(limit: int, **filters: Any) -> list[dict[str, Any]]:
            return list(await storage.search_threads(
                ids=None, metadata=filters.get("metadata"), values=None,
                status=filters.get("status"), limit=limit, offset=0, sort_by=None,
                sort_order=None))

        reads = [
            ("feed look", lambda: storage.pending_threads(None),
             lambda: search(-1, status=STATUSES)),
            ("search, newest 10", lambda: search(10), lambda: _sliced(search(-1))),
            ("search, newest 10 failed", lambda: search(10, status="error"),
             lambda: _sliced(search(-1, status="error"))),
            ("search, metadata none match", lambda: search(10, metadata={"team": "x"}),
             lambda: _sliced(search(-1, metadata={"team": "x"}))),
        ]
        out = []
        for name, now, before in reads:
            found = len(await now())
            out.append((name, await _time(now), await _time(before), found))
        return out
    finally:
        await storage.close()


async def _waiting_figures(storage: Any, waiting: int) -> tuple[float, float]:
    """(seconds now, seconds before) of the feed's look with ``waiting`` threads
    waiting and none changed."""
    from threadloom.server.services.approvals import pending_items

    await storage.setup()
    try:
        await _fill(storage, 0, interrupted=waiting)

        async def before() -> list[Any]:
            return [item for thread in await storage.pending_threads(None)
                    for item in pending_items(thread)]

        assert len(await storage.pending_thread_versions()) == waiting
        return await _time(storage.pending_thread_versions), await _time(before)
    finally:
        await storage.close()


async def _sliced(rows: Any) -> list[dict[str, Any]]:
    return list(await rows)[:10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1000,10000", help="failed threads per figure")
    parser.add_argument("--waiting", default="1000,10000",
                        help="threads waiting for a person, per figure of the feed's look")
    parser.add_argument("--postgres", default=None,
                        help="also on PostgreSQL: a URL whose server may create (and drop) "
                             "a bench database")
    args = parser.parse_args()
    from bench.server import _postgres_database
    from threadloom.server.storage.sqlite import SqliteStorage

    print(f"{'storage':<10} {'failed threads':>14} {'read':<28} {'rows':>5} {'now ms':>9} "
          f"{'before ms':>10}")
    for failed in (int(n) for n in args.threads.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            figures = [("sqlite", asyncio.run(
                _figures(SqliteStorage(str(Path(folder) / "reads.db")), failed)))]
        if args.postgres:
            from threadloom.server.storage.postgres import PostgresStorage

            with _postgres_database(args.postgres) as url:
                figures.append(("postgres", asyncio.run(
                    _figures(PostgresStorage(url, pool_size=2), failed))))
        for kind, reads in figures:
            for name, now, before, found in reads:
                print(f"{kind:<10} {failed:>14,} {name:<28} {found:>5} {now * 1e3:>9.3f} "
                      f"{before * 1e3:>10.3f}", flush=True)

    print(f"\n{'storage':<10} {'waiting threads':>15} {'feed look, none changed: now ms':>32} "
          f"{'before ms':>10}")
    for waiting in (int(n) for n in args.waiting.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            looks = [("sqlite", asyncio.run(_waiting_figures(
                SqliteStorage(str(Path(folder) / "waiting.db")), waiting)))]
        if args.postgres:
            from threadloom.server.storage.postgres import PostgresStorage

            with _postgres_database(args.postgres) as url:
                looks.append(("postgres", asyncio.run(
                    _waiting_figures(PostgresStorage(url, pool_size=2), waiting))))
        for kind, (now, before) in looks:
            print(f"{kind:<10} {waiting:>15,} {now * 1e3:>32.3f} {before * 1e3:>10.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
