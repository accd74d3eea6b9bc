"""The approval feed's look at what is pending, as failed threads pile up.

    .venv/bin/python bench/pending_look.py [--threads 1000,10000] [--postgres URL]

The server's approval feed looks at every thread that may have something waiting for a
person once a second (``ApprovalFeed``; on SQLite inside the server's own event loop).
This fills a server storage with 20 interrupted threads and N failed ones (state values
of ~1 KB, as a small agent's), then times one look both ways, side by side: the storage's
``pending_threads`` (the partial index of pending threads) and the look it replaced, a
search by status reading every interrupted, busy or failed thread.
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


async def _figures(storage: Any, failed: int) -> tuple[float, float, int]:
    await storage.setup()
    try:
        await _fill(storage, failed)

        async def indexed() -> list[dict[str, Any]]:
            return list(await storage.pending_threads(None))

        async def by_status() -> list[dict[str, Any]]:
            return list(await storage.search_threads(
                ids=None, metadata=None, values=None, status=STATUSES, limit=-1, offset=0,
                sort_by=None, sort_order=None))

        found = len(await indexed())
        return await _time(indexed), await _time(by_status), found
    finally:
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1000,10000", help="failed threads per figure")
    parser.add_argument("--postgres", default=None,
                        help="also on PostgreSQL: a URL whose server may create (and drop) "
                             "a bench database")
    args = parser.parse_args()
    from bench.server import _postgres_database
    from threadloom.server.storage.sqlite import SqliteStorage

    print(f"{'storage':<10} {'failed threads':>14} {'pending':>8} {'look (index) ms':>16} "
          f"{'look by status ms':>18}")
    for failed in (int(n) for n in args.threads.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            figures = [("sqlite", asyncio.run(
                _figures(SqliteStorage(str(Path(folder) / "look.db")), failed)))]
        if args.postgres:
            from threadloom.server.storage.postgres import PostgresStorage

            with _postgres_database(args.postgres) as url:
                figures.append(("postgres", asyncio.run(
                    _figures(PostgresStorage(url, pool_size=2), failed))))
        for name, (indexed, by_status, found) in figures:
            print(f"{name:<10} {failed:>14,} {found:>8} {indexed * 1e3:>16.3f} "
                  f"{by_status * 1e3:>18.3f}", flush=True)


if __name__ == "__main__":
    main()
